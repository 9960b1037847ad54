"""Sends under what real DynamoDB and real clients do: retries after failures, races, cancelled
transactions, throttling, oversize items, lost responses, deletes mid-stream. Each failure
branch is forced deterministically (tests/handlers/faults.py), never left to timing."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from parley.aws import clients
from parley.domain.principal import Principal
from parley.settings import get_settings
from tests.handlers import upstream
from tests.handlers.api import Api, Reply
from tests.handlers.faults import (
    Faults,
    cancelled,
    commit_then_lose_response,
    error,
    on_table,
    run_first,
)

OWNER = Principal("org_a", "proj_a", "key_a", ("*",))
FAILED = httpx.Response(502, json={"error": {"message": "upstream down"}})


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def new(api: Api, **fields: Any) -> str:
    reply = api.call("conversations_create", {"title": "t", **fields})
    assert reply.status == 201, reply.body
    return str(reply.body["id"])


def send(api: Api, cid: str, content: str = "hello", key: str | None = None, **fields: Any) -> Reply:
    headers = {"Idempotency-Key": key} if key else None
    return api.call("messages_create", {"content": content, **fields}, path={"conversation_id": cid}, headers=headers)


def history(api: Api, cid: str) -> list[dict[str, Any]]:
    reply = api.call("messages_list", path={"conversation_id": cid}, query={"order": "asc", "limit": "100"})
    return list(reply.body["data"])


def events(body: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


def openai_provider(api: Api) -> str:
    created = api.call(
        "providers_create",
        {"type": "openai", "name": "oa", "api_key": "k", "default_model": "gpt-4o-mini", "is_default": True},
    )
    assert created.status == 201, created.body
    return str(created.body["id"])


def completion(content: str) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        },
    )


def all_items(table: str) -> list[dict[str, Any]]:
    name = get_settings().table(table)
    return list(clients().dynamodb.scan(TableName=name).get("Items", []))


# 1. Idempotency that holds after failures


def test_retries_of_a_send_whose_provider_fails_store_one_pair_and_call_the_model_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    openai_provider(api)
    seen = upstream.install(monkeypatch, [FAILED] * 9)
    cid = new(api)
    replies = [send(api, cid, "charged twice?", key="k-502")]
    model_calls = len(seen)  # the first send and its retries before the first token
    replies += [send(api, cid, "charged twice?", key="k-502") for _ in range(2)]
    assert [r.status for r in replies] == [502, 502, 502]
    assert replies[1].body["error"] == {
        **replies[0].body["error"],
        "request_id": replies[1].body["error"]["request_id"],
    }
    assert "Idempotent-Replayed" not in replies[0].headers
    assert replies[1].headers["Idempotent-Replayed"] == replies[2].headers["Idempotent-Replayed"] == "true"
    stored = history(api, cid)
    assert [(m["role"], m["status"]) for m in stored] == [("user", "completed"), ("assistant", "error")]
    assert model_calls >= 1
    assert len(seen) == model_calls  # the retries made no model call


def test_a_stream_dropped_mid_way_then_retried_stores_one_pair(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    openai_provider(api)
    upstream.install(monkeypatch, [upstream.chunk_then_drop("Partial ans")] + [completion("again")] * 3)
    cid = new(api)
    first = send(api, cid, "stream please", key="k-drop", stream=True)
    assert [e["type"] for e in events(first.body)] == ["start", "text", "error"]
    retry = send(api, cid, "stream please", key="k-drop", stream=True)
    assert retry.headers["Idempotent-Replayed"] == "true"
    replayed = events(retry.body)
    assert [e["type"] for e in replayed] == ["start", "text", "error"]
    assert replayed[0] == events(first.body)[0]
    assert replayed[1]["text"] == "Partial ans"
    # a buffered retry of the same send answers the stored (incomplete) reply
    buffered = send(api, cid, "stream please", key="k-drop")
    assert (buffered.status, buffered.body["status"], buffered.body["content"]) == (200, "incomplete", "Partial ans")
    assert len(history(api, cid)) == 2


def test_a_retry_while_the_reply_is_being_written_gets_409_with_retry_after(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parley.services import registry

    cid = new(api)
    during: list[Reply] = []
    original = registry.EchoProvider.complete

    def slow(self: Any, request: Any) -> Any:
        during.append(send(api, cid, "once", key="k-busy"))
        return original(self, request)

    monkeypatch.setattr(registry.EchoProvider, "complete", slow)
    first = send(api, cid, "once", key="k-busy")
    assert first.status == 200
    assert during[0].status == 409
    assert during[0].body["error"]["code"] == "idempotency_request_in_progress"
    assert during[0].headers["Retry-After"] == "2"
    later = send(api, cid, "once", key="k-busy")
    assert later.body == first.body
    assert len(history(api, cid)) == 2


def test_the_same_key_with_another_body_or_conversation_is_409(api: Api) -> None:
    cid = new(api)
    assert send(api, cid, "a", key="k-1").status == 200
    clash = send(api, cid, "b", key="k-1")
    assert (clash.status, clash.body["error"]["code"]) == (409, "idempotency_key_reused")
    assert send(api, new(api), "a", key="k-1").status == 200  # keys are scoped to their conversation
    assert len(history(api, cid)) == 2


@pytest.mark.parametrize("stream", [False, True])
def test_ten_concurrent_identical_sends_store_one_pair(
    api: Api, faults: Faults, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    """Ten clients send the same keyed request at once to a provider whose first call fails (and
    is retried): one pair is stored; every response is the one result or a 409 with Retry-After."""
    openai_provider(api)
    answer = upstream.streamed(["All ", "good"]) if stream else completion("All good")
    seen = upstream.install(monkeypatch, [httpx.Response(500, json={"error": {"message": "x"}}), answer])
    cid = new(api)
    start = threading.Barrier(10)

    def one(_: int) -> Reply:
        start.wait()
        return send(api, cid, "same", key="k-10", stream=stream)

    with ThreadPoolExecutor(10) as pool:
        replies = list(pool.map(one, range(10)))
    ok = [r for r in replies if r.status == 200]
    busy = [r for r in replies if r.status == 409]
    assert len(ok) + len(busy) == 10, [r.status for r in replies]
    assert ok
    assert all(r.headers["Retry-After"] == "2" for r in busy)
    assert all(r.body["error"]["code"] == "idempotency_request_in_progress" for r in busy)
    if stream:
        texts = {"".join(e.get("text", "") for e in events(r.body)) for r in ok}
        assert texts == {"All good"}
    else:
        assert {r.body["id"] for r in ok} == {ok[0].body["id"]}
    assert len(seen) == 2  # one send called the model (first try failed, the retry answered)
    assert [(m["role"], m["content"]) for m in history(api, cid)] == [("user", "same"), ("assistant", "All good")]


# 2. Transaction failures classified


def test_a_transaction_conflict_is_retried(api: Api, faults: Faults) -> None:
    cid = new(api)
    rule = faults.inject("transact_write_items", cancelled("TransactionConflict", "None", "None"), times=2)
    assert send(api, cid, "hi").status == 200
    assert rule.fired == 2
    assert [m["seq"] for m in history(api, cid)] == [1, 2]


def test_a_throttled_send_is_503_with_retry_after_and_stores_nothing(api: Api, faults: Faults) -> None:
    cid = new(api)
    faults.inject("transact_write_items", cancelled("ThrottlingError", "None", "None"))
    reply = send(api, cid, "hi", key="k-throttle")
    assert (reply.status, reply.body["error"]["code"], reply.headers["Retry-After"]) == (503, "storage_throttled", "1")
    assert history(api, cid) == []
    again = send(api, cid, "hi", key="k-throttle")  # nothing was stored: the retry sends it
    assert again.status == 200
    assert len(history(api, cid)) == 2


def test_an_item_too_large_for_dynamodb_is_413(api: Api, faults: Faults) -> None:
    cid = new(api)
    faults.inject("transact_write_items", cancelled("None", "ValidationError", "None"))
    reply = send(api, cid, "hi")
    assert (reply.status, reply.body["error"]["code"]) == (413, "item_too_large")
    assert history(api, cid) == []


def test_a_single_write_meeting_a_transaction_is_retried(api: Api, faults: Faults) -> None:
    cid = new(api)
    rule = faults.inject("update_item", error("TransactionConflictException"), times=2, when=on_table("messages"))
    reply = send(api, cid, "hi")
    assert (reply.status, reply.body["status"]) == (200, "completed")
    assert rule.fired == 2
    assert [m["status"] for m in history(api, cid)] == ["completed", "completed"]


def test_a_throttled_single_write_is_503(api: Api, faults: Faults) -> None:
    faults.inject("put_item", error("ProvisionedThroughputExceededException"), when=on_table("conversations"))
    reply = api.call("conversations_create", {"title": "t"})
    assert (reply.status, reply.headers["Retry-After"]) == (503, "1")


def test_150k_cjk_characters_are_refused_with_400_before_anything_is_stored(api: Api) -> None:
    cid = new(api)
    reply = send(api, cid, "字" * 150_000)
    assert reply.status == 400
    assert reply.body["error"]["param"] == "content"
    assert "bytes" in reply.body["error"]["message"]
    assert send(api, cid, "字" * 66_000).status == 200  # 198,000 bytes: under the limit
    assert len(history(api, cid)) == 2


def test_a_lone_surrogate_is_400_not_500(api: Api, load_handler: Any, sample_event: Any, lambda_context: Any) -> None:
    cid = new(api)
    event = sample_event("messages_create", raw_body='{"content": "bad \\ud800 text"}')
    event["requestContext"]["authorizer"] = {"principalId": OWNER.key_id, **OWNER.to_context()}
    event["pathParameters"] = {"conversation_id": cid}
    event["path"] = f"/v1/conversations/{cid}/messages"
    result = load_handler("messages_create")(event, lambda_context)
    assert result["statusCode"] == 400, result["body"]
    assert json.loads(result["body"])["error"]["param"] == "content"
    assert history(api, cid) == []


def test_a_reply_too_large_to_store_is_kept_truncated_and_marked(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from parley.services import messages

    monkeypatch.setattr(messages, "MAX_REPLY_BYTES", 10)
    cid = new(api)
    reply = send(api, cid, "0123456789abcdef")
    assert (reply.status, reply.body["status"], reply.body["content"]) == (200, "incomplete", "0123456789")
    assert reply.body["error"]["code"] == "reply_too_large"


# 6. The race suite


def test_a_competitor_wins_the_seq_reservation_and_seqs_stay_dense(api: Api, faults: Faults) -> None:
    cid = new(api)
    faults.inject("transact_write_items", run_first(lambda: send(api, cid, "competitor")))
    assert send(api, cid, "me").status == 200
    assert [(m["seq"], m["content"]) for m in history(api, cid)] == [
        (1, "competitor"),
        (2, "competitor"),
        (3, "me"),
        (4, "me"),
    ]


@pytest.mark.parametrize(
    ("sdk_retries", "tokens_honoured", "key"),
    [(True, True, None), (False, True, None), (True, False, None), (True, False, "k-lost")],
)
def test_a_commit_whose_response_is_lost_appends_one_pair(
    api: Api, faults: Faults, sdk_retries: bool, tokens_honoured: bool, key: str | None
) -> None:
    """The transaction commits and its answer is lost: the resend carries the same
    ClientRequestToken, so DynamoDB answers from the commit and no second pair is appended. Where
    the token is not honoured (moto's server, as under `make serve`), the resend fails its
    conditions and the send sees its own message stored: still one pair, and a 200."""
    cid = new(api)
    faults.inject(
        "transact_write_items",
        commit_then_lose_response(sdk_retries, tokens_honoured),
        when=on_table("messages"),
    )
    reply = send(api, cid, "once", key=key)
    assert reply.status == 200
    assert [(m["seq"], m["content"]) for m in history(api, cid)] == [(1, "once"), (2, "once")]
    assert api.call("conversations_get", path={"conversation_id": cid}).body["message_count"] == 2


def test_delete_during_a_stream_leaves_nothing_behind(
    api: Api, load_handler: Any, sample_event: Any, lambda_context: Any
) -> None:
    cid = new(api)
    event = sample_event("messages_create", {"content": "one two three four", "stream": True})
    event["requestContext"]["authorizer"] = {"principalId": OWNER.key_id, **OWNER.to_context()}
    event["pathParameters"] = {"conversation_id": cid}
    event["path"] = f"/v1/conversations/{cid}/messages"
    result = load_handler("messages_create")(event, lambda_context)
    body = iter(result.body)
    assert b"event: start" in next(body)
    assert api.call("conversations_delete", path={"conversation_id": cid}).status == 200
    rest = b"".join(body).decode()
    assert "event: done" in rest  # the caller still gets its answer
    for table in ("conversations", "messages", "idempotency"):
        assert [i for i in all_items(table) if cid in json.dumps(i)] == [], table


def test_a_summary_finishing_after_a_delete_writes_nothing(api: Api) -> None:
    from parley.domain.conversations import SummaryRecord
    from parley.storage.conversations import ConversationStore

    cid = new(api)
    assert api.call("conversations_delete", path={"conversation_id": cid}).status == 200
    late = SummaryRecord(
        id="msg_late", version=1, covers_to=2, text="late", tokens=3, created_at="2026-01-01T00:00:00Z"
    )
    stored = ConversationStore().put_summary(OWNER.project_id, cid, late, None, 1)
    assert stored is None
    assert [i for i in all_items("messages") if cid in json.dumps(i)] == []


def test_archive_between_read_and_reservation_refuses_the_send_and_stores_nothing(api: Api, faults: Faults) -> None:
    cid = new(api)
    faults.inject(
        "transact_write_items",
        run_first(lambda: api.call("conversations_archive", path={"conversation_id": cid})),
        when=on_table("messages"),
    )
    reply = send(api, cid, "too late")
    assert (reply.status, reply.body["error"]["code"]) == (409, "conversation_archived")
    assert history(api, cid) == []


# 5. Stale pending replies are written back


def test_a_reply_left_pending_by_a_dead_invocation_is_written_back(api: Api) -> None:
    from parley.storage.conversations import ConversationStore

    cid = new(api)
    assert send(api, cid, "hi").status == 200
    table = get_settings().table("messages")
    old = (datetime.now(UTC) - timedelta(minutes=20)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    clients().dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": f"{OWNER.project_id}#{cid}"}, "sk": {"N": "2"}},
        UpdateExpression="SET #s = :p, created_at = :old, pending_shard = :shard",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":p": {"S": "pending"}, ":old": {"S": old}, ":shard": {"S": "pending#1"}},
    )
    shown = history(api, cid)[1]
    assert (shown["status"], shown["error"]["code"]) == ("incomplete", "interrupted")
    raw = ConversationStore().get_message(OWNER.project_id, cid, 2)
    assert raw is not None
    assert raw.status == "incomplete"  # written back, not only shown
    assert "pending_shard" not in raw.model_dump()
