"""Test doubles for webhook deliveries: a receiver on 127.0.0.1, a clock that moves when told,
a deliveries queue that keeps what is sent, and SQS events as Lambda gets them."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from parley.storage.queues import DeliveriesQueue


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: str


class Receiver:
    """An HTTP server on 127.0.0.1 answering POSTs with `statuses` in turn (the last one for
    every request after them) and keeping every request it got."""

    def __init__(self, statuses: Sequence[int] = (200,), delay: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.delay = delay
        self.requests: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                receiver.requests.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses[min(len(receiver.requests) - 1, len(receiver.statuses) - 1)]
                if receiver.delay:
                    threading.Event().wait(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:  # quiet
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


class KeptQueue(DeliveriesQueue):
    """The deliveries queue, kept in memory: (message, delay) per send."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send(self, body: dict[str, Any], delay_seconds: int = 0) -> None:
        self.sent.append((json.loads(json.dumps(body)), delay_seconds))

    def take(self) -> Iterator[tuple[dict[str, Any], int]]:
        while self.sent:
            yield self.sent.pop(0)


def sqs_event(bodies: Sequence[str], queue: str = "parley-webhook-deliveries") -> dict[str, Any]:
    """What Lambda's SQS event source mapping hands a function."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"handle-{uuid.uuid4().hex}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795456800000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1795456800001",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
                "awsRegion": "us-east-1",
            }
            for body in bodies
        ]
    }


def eventbridge_message(detail: dict[str, Any]) -> str:
    """An events-queue message body: the EventBridge event with Parley's envelope as detail."""
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail["type"],
            "source": "parley",
            "account": "123456789012",
            "time": detail["created_at"],
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        }
    )
