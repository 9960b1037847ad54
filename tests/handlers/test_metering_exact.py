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
from tests.handlers.faults import Faults, cancelled, commit_then_lose_response, error, on_table

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
    """The transaction that counts a call (its counter ADD and its audit event)."""
    return on_table("usage")(request) and any(
        "#usage#" in str(item.get("Update", {}).get("Key", {}).get("pk", {}).get("S", ""))
        for item in request.get("TransactItems", [])
    )


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
        "transact_write_items",
        cancelled("TransactionConflict", "None"),
        times=10**6,
        when=every(3, is_usage_counter),
    )
    throttles = faults.inject(
        "transact_write_items",
        error("ProvisionedThroughputExceededException"),
        times=5,
        when=every(7, is_usage_counter),
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
    faults.inject("transact_write_items", error("ThrottlingException"), when=is_usage_counter)
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
    faults.inject("transact_write_items", error("ThrottlingException"), when=is_usage_counter)
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


@pytest.mark.parametrize("tokens_honoured", [True, False])
def test_a_counted_call_resent_by_the_sdk_is_counted_once(api: Api, faults: Faults, tokens_honoured: bool) -> None:
    """botocore resends a transaction whose response was lost (a read timeout): with or without
    the ClientRequestToken being honoured (moto's server ignores it, and real DynamoDB does past
    10 minutes) the audit event's condition stops the second ADD."""
    faults.inject(
        "transact_write_items",
        commit_then_lose_response(sdk_retries=True, tokens_honoured=tokens_honoured),
        when=is_usage_counter,
    )
    cid = api.call("conversations_create", {}).body["id"]
    assert api.call("messages_create", {"content": "hi"}, path={"conversation_id": cid}).status == 200
    _, prompt, completion = replies_usage(api, [cid])
    counted = totals(api)
    assert (counted["requests"], counted["prompt_tokens"], counted["completion_tokens"]) == (1, prompt, completion)
    assert len(api.call("audit_events_list").body["data"]) == 1
    assert sweep().folded == 0


@pytest.mark.parametrize("within_token_window", [True, False])
def test_a_call_whose_outcome_is_unknown_is_parked_and_not_counted_twice(
    api: Api, faults: Faults, within_token_window: bool
) -> None:
    """The counting transaction commits but botocore gives up on its answer (ReadTimeoutError):
    the record is parked, and the sweep's write finds it counted, from the ClientRequestToken
    within its 10 minutes (answered as a success) or from the audit event's condition after."""
    faults.inject("transact_write_items", commit_then_lose_response(sdk_retries=False), when=is_usage_counter)
    cid = api.call("conversations_create", {}).body["id"]
    assert api.call("messages_create", {"content": "hi"}, path={"conversation_id": cid}).status == 200
    assert totals(api)["requests"] == 1
    if not within_token_window:
        faults.forget_tokens()
    assert sweep().folded == (1 if within_token_window else 0)
    assert totals(api)["requests"] == 1
    assert len(api.call("audit_events_list").body["data"]) == 1


def test_a_parked_record_that_fails_again_stays_queued_and_the_sweep_says_so(api: Api, faults: Faults) -> None:
    faults.inject("transact_write_items", error("ThrottlingException"), times=2, when=is_usage_counter)
    cid = api.call("conversations_create", {}).body["id"]
    for text in ("one", "two"):
        assert api.call("messages_create", {"content": text}, path={"conversation_id": cid}).status == 200
    assert totals(api)["requests"] == 0
    faults.inject("transact_write_items", error("ThrottlingException"), when=is_usage_counter)
    with pytest.raises(RuntimeError, match="1 parked usage records could not be folded"):
        sweep()
    assert totals(api)["requests"] == 1  # the other record was folded
    attributes = clients().sqs.get_queue_attributes(
        QueueUrl=MeteringQueue().url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"  # not deleted: SQS redelivers it
