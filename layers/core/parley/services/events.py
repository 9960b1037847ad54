"""The emitter: a batch of DynamoDB stream records (the conversations and messages tables) ->
Parley's events on the bus (parley.events.mapping says what each change means).

A committed change always yields its event: a record whose events EventBridge would not take
(after retries) is reported as the batch's first failure, so Lambda (ReportBatchItemFailures)
checkpoints what came before it and delivers it and everything after it again; the ids are
derived from the records, so what is put twice has the same ids. A record that cannot be read
is reported the same way, and after the event source mapping's retries (bisecting the batch)
the records go to its on-failure destination, with an alarm on its depth. A write that failed
has no stream record, so it yields no event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from parley.aws import clients
from parley.domain.events import Envelope
from parley.events import bus
from parley.events.mapping import Change, approximate, events_of
from parley.metrics import count
from parley.settings import get_settings
from parley.storage.items import from_item

log = logging.getLogger(__name__)
TABLES = ("conversations", "messages")


@dataclass
class Emitted:
    events: list[Envelope] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # sequence numbers, for batchItemFailures


def _table_of(source_arn: str) -> str | None:
    """The logical table (conversations, messages) of a stream record's eventSourceARN."""
    name = source_arn.split(":table/", 1)[-1].split("/", 1)[0]
    settings = get_settings()
    return next((logical for logical in TABLES if settings.table(logical) == name), None)


def change_of(record: dict[str, Any]) -> Change:
    source = str(record.get("eventSourceARN", ""))
    table = _table_of(source)
    if table is None:  # a mapping or a setting is wrong: reported, never dropped quietly
        raise ValueError(f"{source!r} is the stream of neither the conversations nor the messages table")
    images = record.get("dynamodb", {})
    old, new = images.get("OldImage"), images.get("NewImage")
    return Change(
        record_id=str(record["eventID"]),
        table=table,  # type: ignore[arg-type]
        kind=record["eventName"],
        approximate_at=approximate(images.get("ApproximateCreationDateTime")),
        keys=from_item(images.get("Keys", {})),
        old=from_item(old) if old else None,
        new=from_item(new) if new else None,
    )


def emit(records: list[dict[str, Any]], put: Callable[[list[Envelope]], list[int]] | None = None) -> Emitted:
    """Map the records and put their events, in order. The first record that fails (to be read,
    or to have its events put) is reported: Lambda redelivers it and every record after it."""
    publish = put or _put
    result = Emitted()
    mapped: list[tuple[str, list[Envelope]]] = []
    unreadable: str | None = None
    for record in records:
        sequence = str(record.get("dynamodb", {}).get("SequenceNumber", ""))
        try:
            change = change_of(record)
            mapped.append((sequence, events_of(change)))
        except Exception:  # redelivered, then parked by the event source mapping's destination
            log.exception("a stream record could not be mapped to events", extra={"event_id": record.get("eventID")})
            count("EventsUnreadable")
            unreadable = sequence
            break
    flat = [e for _, events in mapped for e in events]
    refused = set(publish(flat)) if flat else set()
    start = 0
    for sequence, events in mapped:
        if refused.intersection(range(start, start + len(events))):
            count("EventsRefused", len(refused))
            result.failed = [sequence]
            return result
        result.events += events
        start += len(events)
    if unreadable is not None:
        result.failed = [unreadable]
    return result


def _put(events: list[Envelope]) -> list[int]:
    return bus.publish(events, clients().events, get_settings().event_bus)
