"""Issue 14's acceptance, end to end on `make serve`: a receiver on 127.0.0.1 gets every event of
a scripted conversation (create, 3 sends, a summary, archive, unarchive, delete) exactly once,
in order by `sequence`, each signed so that the `standardwebhooks` library verifies it. The
whole pipeline runs in the server's background: streams -> events_emit -> the bus -> the webhook
rule's queue -> webhooks_fanout -> the deliveries queue -> webhooks_deliver -> the receiver."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.handlers.webhook_receiver import Received, Receiver
from tests.local.conftest import Server

pytestmark = pytest.mark.local
EXPECTED = [
    "chat.conversation_created",
    "chat.message_sent",
    "chat.response_completed",
    "chat.message_sent",
    "chat.response_completed",
    "chat.context_summarized",
    "chat.message_sent",
    "chat.response_completed",
    "chat.conversation_archived",
    "chat.conversation_unarchived",
    "chat.conversation_deleted",
]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def of(receiver: Receiver, conversation_id: str) -> list[Received]:
    return [r for r in list(receiver.requests) if json.loads(r.body).get("conversation_id") == conversation_id]


def call(server: Server, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.key}"}
    return httpx.request(method, f"{server.url}{path}", json=body, headers=headers, timeout=60)


def test_a_receiver_gets_every_event_of_a_conversation_once_in_order_and_signed(
    server: Server, receiver: Receiver
) -> None:
    created = call(server, "POST", "/v1/webhooks", {"url": receiver.url, "event_types": ["chat.*"]})
    assert created.status_code == 201, created.text
    secret, webhook_id = created.json()["secret"], created.json()["id"]
    try:
        context = {"strategy": "summarize", "max_tokens": 300, "summarize_after": 2}
        conversation = call(server, "POST", "/v1/conversations", {"title": "Webhooks", "context": context})
        assert conversation.status_code == 201, conversation.text
        cid = conversation.json()["id"]
        for i in range(3):
            text = f"fact {i}: the invoice number is {1000 + i} " + "detail " * 110
            sent = call(server, "POST", f"/v1/conversations/{cid}/messages", {"content": text})
            assert sent.status_code == 200, sent.text
        for step in ("archive", "unarchive"):
            assert call(server, "POST", f"/v1/conversations/{cid}/{step}").status_code == 200
        assert call(server, "DELETE", f"/v1/conversations/{cid}").status_code == 200

        deadline = time.monotonic() + 90
        while len(of(receiver, cid)) < len(EXPECTED) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # anything sent twice would arrive by now
        deliveries = of(receiver, cid)
        events = [json.loads(r.body) for r in deliveries]
        assert Counter(e["type"] for e in events) == Counter(EXPECTED), [e["type"] for e in events]
        assert len({e["id"] for e in events}) == len(EXPECTED)  # each exactly once
        ordered = sorted(events, key=lambda e: e["sequence"])
        assert [e["type"] for e in ordered] == EXPECTED
        verifier = Webhook(secret)
        for request in deliveries:
            verified = verifier.verify(request.body, request.headers)  # raises unless the signature is right
            assert request.headers["webhook-id"] == verified["id"]
    finally:
        assert call(server, "DELETE", f"/v1/webhooks/{webhook_id}").status_code == 200
