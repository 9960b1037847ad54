"""Idempotency-Key on POSTs: a retry gets the first response, and nothing is stored twice."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley.domain.principal import Principal
from tests.handlers.api import Api

OWNER = Principal("org_a", "proj_a", "key_a", ("*",))


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def count(api: Api, cid: str) -> int:
    return int(api.call("conversations_get", path={"conversation_id": cid}).body["message_count"])


def test_a_retried_create_returns_the_first_response(api: Api) -> None:
    first = api.call("conversations_create", {"title": "once"}, headers=key("create-1"))
    retry = api.call("conversations_create", {"title": "once"}, headers=key("create-1"))
    assert (first.status, retry.status) == (201, 201)
    assert retry.body == first.body
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    listed = api.call("conversations_list").body["data"]
    assert [c["id"] for c in listed] == [first.body["id"]]
    other = api.call("conversations_create", {"title": "once"}, headers=key("create-2"))
    assert other.body["id"] != first.body["id"]


def test_a_retried_send_stores_the_pair_once(api: Api) -> None:
    cid = api.call("conversations_create", {}).body["id"]
    first = api.call("messages_create", {"content": "pay?"}, path={"conversation_id": cid}, headers=key("send-1"))
    retry = api.call("messages_create", {"content": "pay?"}, path={"conversation_id": cid}, headers=key("send-1"))
    assert retry.body == first.body
    assert count(api, cid) == 2


def sse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def test_a_retried_streamed_send_streams_the_stored_reply(api: Api) -> None:
    cid = api.call("conversations_create", {}).body["id"]
    body = {"content": "stream it", "stream": True}
    first = api.call("messages_create", body, path={"conversation_id": cid}, headers=key("stream-1"))
    retry = api.call("messages_create", body, path={"conversation_id": cid}, headers=key("stream-1"))
    assert retry.status == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    once, again = sse_events(first.body), sse_events(retry.body)
    assert again[0] == once[0]  # the same start event: the same message ids
    assert "".join(e["text"] for e in again if e["type"] == "text") == "stream it"
    assert again[-1] == once[-1]  # the same done event: usage, cost
    assert count(api, cid) == 2


def test_the_same_key_with_another_request_is_refused(api: Api) -> None:
    api.call("conversations_create", {"title": "a"}, headers=key("k"))
    clash = api.call("conversations_create", {"title": "b"}, headers=key("k"))
    assert clash.status == 409
    assert clash.body["error"]["code"] == "idempotency_key_reused"


def test_keys_are_scoped_to_the_project(api: Api) -> None:
    stranger = Principal("org_b", "proj_b", "key_b", ("*",))
    mine = api.call("conversations_create", {"title": "a"}, headers=key("shared"))
    theirs = api.call("conversations_create", {"title": "a"}, headers=key("shared"), principal=stranger)
    assert theirs.status == 201
    assert theirs.body["id"] != mine.body["id"]


def test_a_request_still_running_gets_409(api: Api) -> None:
    from parley.api.idempotency import run
    from parley.storage.idempotency import IdempotencyStore

    retried: list[Any] = []

    def first_request() -> dict[str, Any]:
        retried.append(api.call("conversations_create", {"title": "a"}, headers=key("slow")))
        return {"statusCode": 201, "headers": {}, "body": "{}"}

    event = {
        "httpMethod": "POST",
        "resource": "/v1/conversations",
        "path": "/v1/conversations",
        "body": '{"title": "a"}',
    }
    run(event, "slow", OWNER, first_request, IdempotencyStore())
    assert retried[0].status == 409
    assert retried[0].body["error"]["code"] == "idempotency_request_in_progress"
    assert retried[0].headers["Retry-After"] == "2"


def test_a_throttled_request_releases_the_key(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """503 (storage throttled): nothing was stored, so the retry runs again."""
    from parley.domain.errors import Unavailable
    from parley.services import conversations

    real = conversations.create
    monkeypatch.setattr(conversations, "create", lambda *a: (_ for _ in ()).throw(Unavailable("throttled")))
    busy = api.call("conversations_create", {}, headers=key("again"))
    assert (busy.status, busy.headers["Retry-After"]) == (503, "1")
    monkeypatch.setattr(conversations, "create", real)
    assert api.call("conversations_create", {}, headers=key("again")).status == 201


def test_an_internal_error_is_kept_so_the_retry_cannot_store_twice(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 500 may come after a write: the retry gets the same 500, not a second run."""
    from parley.services import conversations

    real = conversations.create
    monkeypatch.setattr(conversations, "create", lambda *a: (_ for _ in ()).throw(RuntimeError("disk on fire")))
    assert api.call("conversations_create", {}, headers=key("again")).status == 500
    monkeypatch.setattr(conversations, "create", real)
    retry = api.call("conversations_create", {}, headers=key("again"))
    assert (retry.status, retry.headers["Idempotent-Replayed"]) == (500, "true")
    assert api.call("conversations_list").body["data"] == []


@pytest.mark.parametrize("value", ["", "x" * 256, "tab\there"])
def test_malformed_keys_are_400(api: Api, value: str) -> None:
    reply = api.call("conversations_create", {}, headers=key(value))
    assert reply.status == 400
    assert reply.body["error"]["param"] == "Idempotency-Key"
