"""Events from committed writes: the tables' streams -> events_emit -> EventBridge (moto) -> the
webhook rule's queue, driven by the local server's pipeline (parley.runtime.pipeline) with the
same handler Lambda runs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter

from parley.aws import clients
from parley.domain.events import Event
from parley.domain.principal import Principal
from parley.events import bus
from parley.runtime.pipeline import Pipeline
from parley.services import events as emitter
from parley.settings import get_settings
from tests.handlers.api import Api
from tests.handlers.faults import Faults, on_table, run_first
from tests.unit.test_event_catalogue import schema_of

OWNER = Principal("org_a", "proj_a", "key_a", ("*",))
EVENTS = TypeAdapter(Event)


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def published() -> list[dict[str, Any]]:
    """Every event the webhook rule delivered to its queue, as EventBridge wrote it."""
    sqs, url = clients().sqs, clients().sqs.get_queue_url(QueueName=get_settings().events_queue)["QueueUrl"]
    found: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return found
        found += [json.loads(m["Body"]) for m in batch]
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )


def create(api: Api, **body: Any) -> str:
    reply = api.call("conversations_create", {"title": "Billing", "user_id": "u1", **body})
    assert reply.status == 201, reply.body
    return str(reply.body["id"])


def send(api: Api, cid: str, content: str) -> Any:
    reply = api.call("messages_create", {"content": content}, path={"conversation_id": cid})
    assert reply.status == 200, reply.body
    return reply.body


def test_a_scripted_conversation_yields_each_event_once_in_order(api: Api, pipeline: Pipeline) -> None:
    cid = create(api, context={"strategy": "summarize", "max_tokens": 300, "summarize_after": 2})
    for i in range(3):
        send(api, cid, f"fact {i}: the invoice number is {1000 + i} " + "detail " * 110)
    assert api.call("conversations_update", {"title": "Invoices"}, path={"conversation_id": cid}).status == 200
    assert api.call("conversations_archive", path={"conversation_id": cid}).status == 200
    assert api.call("conversations_unarchive", path={"conversation_id": cid}).status == 200
    assert api.call("conversations_delete", path={"conversation_id": cid}).status == 200
    pipeline.drain()
    delivered = published()
    details = sorted((e["detail"] for e in delivered), key=lambda d: d["sequence"])
    types = [d["type"] for d in details]
    assert types == [
        "chat.conversation_created",
        "chat.message_sent",
        "chat.response_completed",
        "chat.message_sent",
        "chat.response_completed",
        "chat.context_summarized",
        "chat.message_sent",
        "chat.response_completed",
        "chat.conversation_updated",
        "chat.conversation_archived",
        "chat.conversation_unarchived",
        "chat.conversation_deleted",
    ], types
    # in the order they were put, too: one stream per table, each in commit order
    assert [e["detail"]["sequence"] for e in delivered if e["detail"]["type"].startswith("chat.conversation")] == [
        d["sequence"] for d in details if d["type"].startswith("chat.conversation")
    ]
    assert len({d["id"] for d in details}) == len(details)
    sequences = [d["sequence"] for d in details]
    assert sequences == sorted(set(sequences))  # strictly increasing
    for event, detail in zip(sorted(delivered, key=lambda e: e["detail"]["sequence"]), details, strict=True):
        assert (event["source"], event["detail-type"]) == ("parley", detail["type"])
        schema_of(detail["type"]).validate(detail)  # events/schemas/<type>.json
        parsed = EVENTS.validate_python(detail)
        assert (parsed.project_id, parsed.org_id, parsed.conversation_id) == ("proj_a", "org_a", cid)
    summarized = next(d for d in details if d["type"] == "chat.context_summarized")["data"]
    assert summarized["message_count"] == summarized["covers_to"] - summarized["covers_from"] + 1 >= 1
    completed = [d["data"] for d in details if d["type"] == "chat.response_completed"]
    assert all(c["token_count"] == c["usage"]["total_tokens"] > 0 for c in completed)
    assert details[-4]["data"]["changed"] == ["title"]


def test_message_content_is_bounded_and_flagged(api: Api, pipeline: Pipeline) -> None:
    cid = create(api)
    send(api, cid, "x" * 5000)
    pipeline.drain()
    sent = next(e["detail"] for e in published() if e["detail"]["type"] == "chat.message_sent")
    assert len(sent["data"]["content"]) == 4000
    assert sent["data"]["content_truncated"] is True


def test_a_write_that_was_rolled_back_yields_no_event(api: Api, pipeline: Pipeline, faults: Faults) -> None:
    cid = create(api)
    pipeline.drain()
    published()
    # the send's transaction is cancelled: an archive committed between its read and its write
    faults.inject(
        "transact_write_items",
        run_first(lambda: api.call("conversations_archive", path={"conversation_id": cid})),
        when=on_table("messages"),
    )
    reply = api.call("messages_create", {"content": "too late"}, path={"conversation_id": cid})
    assert reply.status == 409
    pipeline.drain()
    assert [e["detail"]["type"] for e in published()] == ["chat.conversation_archived"]


def stream_records() -> list[dict[str, Any]]:
    """Every record of the messages and conversations streams, as Lambda delivers them."""
    from parley.runtime.pipeline import StreamSource

    records: list[dict[str, Any]] = []
    for logical in ("conversations", "messages"):
        source = StreamSource(clients(), get_settings().table(logical))
        source.refresh()
        for shard in source.shards.values():
            source.read(shard, 1000)
            records += shard.pending
    return records


def test_a_redelivered_batch_yields_the_same_ids(api: Api) -> None:
    cid = create(api)
    send(api, cid, "hello")
    records = stream_records()
    first = emitter.emit(records, put=lambda events: [])
    again = emitter.emit(records, put=lambda events: [])
    assert [e.id for e in first.events] == [e.id for e in again.events]
    assert len(first.events) == 3  # created, sent, completed
    assert first.failed == again.failed == []


def test_entries_eventbridge_refuses_are_retried_and_what_stays_refused_is_redelivered(api: Api) -> None:
    cid = create(api)
    send(api, cid, "hello")
    records = stream_records()
    real = clients().events
    calls: list[int] = []

    class Flaky:
        """Refuses the second entry of the first call (as EventBridge does under throttling)."""

        def put_events(self, Entries: list[Any]) -> dict[str, Any]:
            calls.append(len(Entries))
            answer = real.put_events(Entries=Entries)
            if len(calls) == 1:
                answer["Entries"][1] = {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}
                answer["FailedEntryCount"] = 1
            return answer

    put = emitter.emit(records, put=lambda events: bus.publish(events, Flaky(), "parley-events", sleep=lambda s: None))  # type: ignore[arg-type]
    assert put.failed == [] and calls == [3, 1]  # the refused one alone, again

    class Down:
        def put_events(self, Entries: list[Any]) -> dict[str, Any]:
            results: list[dict[str, str]] = [{"EventId": "x"} for _ in Entries]
            results[-1] = {"ErrorCode": "InternalFailure", "ErrorMessage": "down"}
            return {"FailedEntryCount": 1, "Entries": results}

    refused = emitter.emit(
        records, put=lambda events: bus.publish(events, Down(), "parley-events", sleep=lambda s: None)
    )  # type: ignore[arg-type]
    # the record of the refused event is reported: Lambda checkpoints the ones before it and
    # delivers it (and what follows) again; the events before it were put
    completing = next(
        r
        for r in records
        if [e.type for e in emitter.emit([r], put=lambda events: []).events] == ["chat.response_completed"]
    )
    assert refused.failed == [completing["dynamodb"]["SequenceNumber"]]
    assert [e.type for e in refused.events] == ["chat.conversation_created", "chat.message_sent"]


def test_a_record_that_cannot_be_read_is_reported_and_the_ones_before_it_are_put(api: Api) -> None:
    cid = create(api)
    send(api, cid, "hello")
    records = stream_records()
    broken = [*records[:1], {**records[1], "dynamodb": {**records[1]["dynamodb"], "NewImage": {"id": {"X": 1}}}}]
    put: list[str] = []
    result = emitter.emit(broken, put=lambda events: put.extend(e.type for e in events) or [])  # type: ignore[func-returns-value]
    assert result.failed == [records[1]["dynamodb"]["SequenceNumber"]]
    assert len(put) == 1


def test_locally_a_record_that_keeps_failing_is_parked_alone_and_the_stream_goes_on(
    api: Api, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parley.events import mapping

    cid = create(api)
    send(api, cid, "hello")
    real = mapping.events_of

    def poisoned(change: mapping.Change) -> list[Any]:
        if change.kind == "INSERT" and change.table == "messages" and (change.new or {}).get("role") == "user":
            raise ValueError("a record this version cannot read")
        return real(change)

    monkeypatch.setattr(emitter, "events_of", poisoned)
    pipeline.drain()
    types = sorted(e["detail"]["type"] for e in published())
    assert types == ["chat.conversation_created", "chat.response_completed"]  # all but the poisoned one
    assert pipeline.parked == {"events_emit": 1}
    sqs = clients().sqs
    url = sqs.get_queue_url(QueueName=get_settings().events_dlq)["QueueUrl"]
    (parked,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(parked["Body"])["DDBStreamBatchInfo"]["batchSize"] == 1


def test_a_record_of_another_table_is_reported_not_dropped(api: Api) -> None:
    cid = create(api)
    (record,) = [r for r in stream_records() if cid in json.dumps(r)][:1]
    stray = {**record, "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/somebody-else/stream/x"}
    assert emitter.emit([stray], put=lambda events: []).failed == [record["dynamodb"]["SequenceNumber"]]
