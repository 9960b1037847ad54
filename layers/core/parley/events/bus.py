"""Parley's events onto EventBridge: PutEvents in order, ten entries (and at most 256 KB) a call,
the entries EventBridge did not take sent again with backoff; what still fails is reported, in
order, so the caller can have the rest of its batch redelivered."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from parley.domain.events import SOURCE, Envelope

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

log = logging.getLogger(__name__)
MAX_ENTRIES = 10  # PutEvents
MAX_REQUEST_BYTES = 256 * 1024  # PutEvents: the whole request
TRIES = 5


def entry(event: Envelope, bus: str) -> PutEventsRequestEntryTypeDef:
    return {
        "Source": SOURCE,
        "DetailType": event.type,
        "Detail": event.model_dump_json(),
        "EventBusName": bus,
        "Time": datetime.fromisoformat(event.created_at.replace("Z", "+00:00")),
    }


def _size(item: PutEventsRequestEntryTypeDef) -> int:
    # what EventBridge counts: Source, DetailType, Detail (UTF-8), 14 bytes for Time, resources
    return len(item["Source"]) + len(item["DetailType"].encode()) + len(item["Detail"].encode()) + 14


def _chunks(entries: list[PutEventsRequestEntryTypeDef]) -> list[list[int]]:
    chunks: list[list[int]] = []
    size = 0
    for index, item in enumerate(entries):
        cost = _size(item)
        if not chunks or len(chunks[-1]) == MAX_ENTRIES or size + cost > MAX_REQUEST_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(index)
        size += cost
    return chunks


def publish(
    events: Sequence[Envelope],
    client: EventBridgeClient,
    bus: str,
    *,
    tries: int = TRIES,
    sleep: Callable[[float], None] = time.sleep,
) -> list[int]:
    """Put `events` on `bus`; the indexes of those EventBridge still refused after `tries`
    (empty when all were taken). A call that raises (throttled after botocore's retries,
    unreachable) counts as refusing all its entries."""
    entries = [entry(e, bus) for e in events]
    refused: set[int] = set()
    for chunk in _chunks(entries):
        pending = chunk
        for attempt in range(tries):
            failed = _put(client, [entries[i] for i in pending])
            pending = [pending[i] for i in failed]
            if not pending:
                break
            if attempt < tries - 1:
                sleep(min(5.0, 0.1 * 2**attempt) * (0.5 + random.random() / 2))  # noqa: S311 - jitter
        refused.update(pending)
    return sorted(refused)


def _put(client: EventBridgeClient, entries: list[PutEventsRequestEntryTypeDef]) -> list[int]:
    """The positions of the entries this call did not take."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        answer = client.put_events(Entries=entries)
    except (ClientError, BotoCoreError) as error:
        log.warning("PutEvents failed; retrying its entries", extra={"error": type(error).__name__})
        return list(range(len(entries)))
    results: list[Any] = list(answer.get("Entries", []))
    failed = [i for i, result in enumerate(results) if result.get("ErrorCode")]
    if failed:
        codes = sorted({str(results[i]["ErrorCode"]) for i in failed})
        log.warning("PutEvents refused entries; retrying them", extra={"count": len(failed), "codes": codes})
    if len(results) < len(entries):  # never seen; treat what has no result as refused
        failed += list(range(len(results), len(entries)))
    return failed
