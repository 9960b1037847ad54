"""Metering never loses or doubles a call: atomic counters, retried conflicts, parked records
folded in exactly once by the sweep, and stale pending replies written back by it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from parley.aws import clients
from parley.domain.principal import Principal
from parley.services.sweep import sweep
from parley.settings import get_settings
from parley.storage.queues import MeteringQueue
from tests.handlers.api import Api
from tests.handlers.faults import Faults, error, on_table

OWNER = Principal("org_m", "proj_m", "key_m", ("*",))
SENDS = 100


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def every(n: int, match: Any) -> Any:
    """A `when` that matches every n-th request that `match` accepts."""
    seen = [0]

    def when(request: dict[str, Any]) -> bool:
        if not match(request):
            return False
        seen[0] += 1
        return seen[0] % n == 0

    return when


def is_usage_counter(request: dict[str, Any]) -> bool:
    return on_table("usage")(request) and "#usage#" in str(request.get("Key", {}).get("pk", {}).get("S", ""))


def replies_usage(api: Api, conversations: list[str]) -> tuple[int, int, int]:
    prompt = completion = replies = 0
    for cid in conversations:
        page = api.call("messages_list", path={"conversation_id": cid}, query={"limit": "100"}).body["data"]
        for message in page:
            if message["role"] == "assistant":
                replies += 1
                prompt += message["usage"]["prompt_tokens"]
                completion += message["usage"]["completion_tokens"]
    return replies, prompt, completion


def totals(api: Api) -> dict[str, Any]:
    return dict(api.call("usage_get").body["totals"])


def test_100_concurrent_sends_with_a_conflicting_writer_meter_exactly(api: Api, faults: Faults) -> None:
    """Every third counter update meets a transaction (TransactionConflictException, retried);
    five more are throttled past every retry, so those records are parked and folded in later."""
    conflicts = faults.inject(
        "update_item", error("TransactionConflictException"), times=10**6, when=every(3, is_usage_counter)
    )
    throttles = faults.inject(
        "update_item", error("ProvisionedThroughputExceededException"), times=5, when=every(7, is_usage_counter)
    )
    conversations = [api.call("conversations_create", {"title": f"c{i}"}).body["id"] for i in range(10)]
    start = threading.Barrier(20)

    def one(n: int) -> int:
        if n < 20:
            start.wait()
        reply = api.call(
            "messages_create", {"content": f"message number {n}"}, path={"conversation_id": conversations[n % 10]}
        )
        return reply.status

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(one, range(SENDS)))
    assert statuses == [200] * SENDS
    assert conflicts.fired > 10
    assert throttles.fired == 5
    parked = SENDS - totals(api)["requests"]
    assert parked >= 5  # the throttled ones (and any whose conflicts outlasted the retries) wait on the queue
    assert sweep().folded == parked
    replies, prompt, completion = replies_usage(api, conversations)
    after = totals(api)
    assert replies == SENDS
    assert (after["requests"], after["prompt_tokens"], after["completion_tokens"]) == (SENDS, prompt, completion)
    audit = api.call("audit_events_list", query={"limit": "100"}).body["data"]
    assert len(audit) == SENDS


def test_a_parked_record_delivered_twice_is_counted_once(api: Api, faults: Faults) -> None:
    faults.inject("update_item", error("ThrottlingException"), when=is_usage_counter)
    cid = api.call("conversations_create", {}).body["id"]
    assert api.call("messages_create", {"content": "hi"}, path={"conversation_id": cid}).status == 200
    queue = MeteringQueue()
    (_receipt, record), *_ = queue.receive()
    queue.park(record)  # SQS delivers at least once: the same record again
    assert sweep().folded == 1
    assert sweep().folded == 0
    assert totals(api)["requests"] == 1
    assert len(api.call("audit_events_list").body["data"]) == 1


def test_when_parking_fails_too_the_send_fails_loudly_but_its_reply_is_stored(
    api: Api, faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults.inject("update_item", error("ThrottlingException"), when=is_usage_counter)
    monkeypatch.setattr(MeteringQueue, "park", lambda self, record: (_ for _ in ()).throw(OSError("sqs down")))
    cid = api.call("conversations_create", {}).body["id"]
    reply = api.call(
        "messages_create", {"content": "hi"}, path={"conversation_id": cid}, headers={"Idempotency-Key": "m1"}
    )
    assert reply.status == 500
    stored = api.call("messages_list", path={"conversation_id": cid}).body["data"]
    assert [m["status"] for m in stored] == ["completed", "completed"]
    retry = api.call(
        "messages_create", {"content": "hi"}, path={"conversation_id": cid}, headers={"Idempotency-Key": "m1"}
    )
    assert (retry.status, retry.headers["Idempotent-Replayed"]) == (200, "true")


def test_the_sweep_writes_back_replies_a_dead_invocation_left_pending(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parley.services import registry

    cid = api.call("conversations_create", {}).body["id"]

    def die(self: Any, request: Any) -> Any:
        raise SystemExit("the invocation was killed")  # nothing in Parley catches this

    monkeypatch.setattr(registry.EchoProvider, "complete", die)
    with pytest.raises(SystemExit):
        api.call("messages_create", {"content": "hi"}, path={"conversation_id": cid})
    raw = clients().dynamodb.get_item(
        TableName=get_settings().table("messages"), Key={"pk": {"S": f"{OWNER.project_id}#{cid}"}, "sk": {"N": "2"}}
    )["Item"]
    assert raw["status"]["S"] == "pending"
    assert sweep().interrupted == 0  # not yet: the invocation might still be running
    later = datetime.now(UTC) + timedelta(minutes=17)
    assert sweep(now=later).interrupted == 1
    raw = clients().dynamodb.get_item(
        TableName=get_settings().table("messages"), Key={"pk": {"S": f"{OWNER.project_id}#{cid}"}, "sk": {"N": "2"}}
    )["Item"]
    assert raw["status"]["S"] == "incomplete"
    assert "pending_shard" not in raw
    assert sweep(now=later).interrupted == 0
