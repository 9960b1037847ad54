"""make serve runs the event pipeline in the background: a conversation's committed changes reach
the bus and its webhook rule's queue on the emulation, in order, while the server serves."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.local.conftest import Server

pytestmark = pytest.mark.local


def emulation_url(server: Server) -> str:
    info = json.loads((Path(tempfile.gettempdir()) / f"parley-{server.process.pid}.json").read_text())
    return str(info["emulation_url"])


def webhook_queue_events(server: Server, conversation_id: str, want: int, timeout: float = 30) -> list[dict[str, Any]]:
    sqs = boto3.client(
        "sqs",
        endpoint_url=emulation_url(server),
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    url = sqs.get_queue_url(QueueName="parley-webhook-events")["QueueUrl"]
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            event = json.loads(message["Body"])
            if event["detail"].get("conversation_id") == conversation_id:
                found.append(event["detail"])
        if len(found) >= want:
            break
    return found


def test_a_conversations_events_reach_the_bus_while_the_server_serves(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.key}"}
    created = httpx.post(f"{server.url}/v1/conversations", json={"title": "Events"}, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    sent = httpx.post(
        f"{server.url}/v1/conversations/{cid}/messages", json={"content": "hi"}, headers=headers, timeout=60
    )
    assert sent.status_code == 200, sent.text
    archived = httpx.post(f"{server.url}/v1/conversations/{cid}/archive", headers=headers, timeout=30)
    assert archived.status_code == 200, archived.text
    events = sorted(webhook_queue_events(server, cid, 4), key=lambda e: e["sequence"])
    assert [e["type"] for e in events] == [
        "chat.conversation_created",
        "chat.message_sent",
        "chat.response_completed",
        "chat.conversation_archived",
    ]
    assert len({e["id"] for e in events}) == 4
