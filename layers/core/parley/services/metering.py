"""Metering and audit for every model call: token counters per project, day, model and key,
cost from the price table, and an audit event (who, route, resources, outcome, status,
latency; never bodies, never secrets)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from parley.domain.chat import Usage
from parley.domain.clock import iso
from parley.domain.errors import InvalidRequest, ParleyError
from parley.domain.ids import new_id
from parley.domain.paging import Pages, Position
from parley.domain.principal import Principal
from parley.domain.usage import AuditEvent, Outcome, UsageGroup, UsageReport, UsageSummary
from parley.metrics import count
from parley.providers.pricing import PRICE_VERSION, cost_usd
from parley.storage.queues import MeteringQueue
from parley.storage.usage import AUDIT_RETENTION_DAYS, UsageRepository

log = logging.getLogger(__name__)
NANOS = Decimal(1_000_000_000)
MAX_REPORT_DAYS = 92


@dataclass
class CallRecord:
    route: str
    request_id: str
    model: str
    status: int
    outcome: Outcome
    latency_ms: int
    usage: Usage | None = None
    provider_id: str | None = None
    error_code: str | None = None
    resource_ids: list[str] = field(default_factory=list)
    tries: int = 1
    user: str | None = None  # the end user (budgets per user)
    provider: str | None = None  # the provider type that answered (echo, openai, anthropic, bedrock)


def call_cost(call: CallRecord) -> Decimal | None:
    """The call's cost from the price table (None without usage, or for a model it does not know)."""
    return cost_usd(call.model, call.usage) if call.usage is not None else None


def record_call(
    principal: Principal, call: CallRecord, repository: UsageRepository | None = None, now: datetime | None = None
) -> Decimal | None:
    """Count the call and audit it; returns its cost (None when the model has no price)."""
    now = now or datetime.now(UTC)
    cost = call_cost(call)
    _call_metrics(call)
    counters = {"requests": 1}
    if call.outcome != "succeeded":
        counters["failed_requests"] = 1
    if call.usage is not None:
        cached = call.usage.prompt_tokens_details.cached_tokens if call.usage.prompt_tokens_details else 0
        counters.update(
            prompt_tokens=call.usage.prompt_tokens, completion_tokens=call.usage.completion_tokens, cached_tokens=cached
        )
        if cost is None:
            counters["unpriced_requests"] = 1
        else:
            counters["priced_requests"] = 1
            counters["cost_nanos"] = int((cost * NANOS).to_integral_value())
    audit: dict[str, Any] = {
        "id": new_id("evt"),
        "object": "audit_event",
        "time": iso(now),
        "key_id": principal.key_id,
        "route": call.route,
        "request_id": call.request_id,
        "resource_ids": call.resource_ids,
        "outcome": call.outcome,
        "status": call.status,
        "latency_ms": call.latency_ms,
        "model": call.model,
        "provider_id": call.provider_id,
        "error_code": call.error_code,
        "tries": call.tries,
        "total_tokens": call.usage.total_tokens if call.usage is not None else None,
        "expires_at": int((now + timedelta(days=AUDIT_RETENTION_DAYS)).timestamp()),
    }
    labels = {"model": call.model, "key_id": principal.key_id, "day": now.date().isoformat()}
    if call.user:
        labels["user"] = call.user
    write(principal.project_id, counters, labels, audit, repository=repository)
    return cost


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """Made on first use (no thread at import); a warm environment keeps it."""
    global _pool  # one lazy pool per process
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="parley-metering")
        return _pool


def start_record_call(principal: Principal, call: CallRecord) -> Future[Decimal | None]:
    """`record_call` issued now on a worker thread, so the caller's own write (a send's reply)
    goes out at the same time: the call's tail is one round trip, not two. The metering write
    is the same exactly-once transaction; the caller must `result()` the future before it
    answers (its failure, parking included, is the call's failure, as with `record_call`)."""
    return _executor().submit(record_call, principal, call)


def _call_metrics(call: CallRecord) -> None:
    """ModelCalls, ModelCallsFailed, PromptTokens and CompletionTokens by provider type (the
    dashboard's model calls and tokens; a type, not a provider record or model: few dimensions)."""
    provider = call.provider or "unknown"
    count("ModelCalls", provider=provider)
    if call.outcome == "failed":
        count("ModelCallsFailed", provider=provider)
    if call.usage is not None:
        count("PromptTokens", call.usage.prompt_tokens, provider=provider)
        count("CompletionTokens", call.usage.completion_tokens, provider=provider)


def write(
    project_id: str,
    counters: dict[str, int],
    labels: dict[str, str],
    audit: dict[str, Any],
    *,
    repository: UsageRepository | None = None,
    queue: MeteringQueue | None = None,
) -> None:
    """Count a call and store its audit event, exactly once (`UsageRepository.record`).
    Conflicts are retried with backoff and throttling by botocore; a record DynamoDB still
    would not take, or whose outcome is unknown (a read timeout after botocore's retries), is
    parked on the metering queue, whole, and the sweep folds it in (`fold_parked`), counting it
    only if it did not land, with the metric `MeteringParked`. Only if parking fails too does
    this raise."""
    repository = repository or UsageRepository()
    try:
        repository.record(project_id, labels["day"], counters, labels, audit)
    except (ClientError, BotoCoreError, ParleyError) as error:
        _park(project_id, counters, labels, audit, queue, error)


def _park(
    project_id: str,
    counters: dict[str, int],
    labels: dict[str, str],
    audit: dict[str, Any],
    queue: MeteringQueue | None,
    error: Exception,
) -> None:
    record = {"id": audit["id"], "project_id": project_id, "counters": counters, "labels": labels, "audit": audit}
    (queue or MeteringQueue()).park(record)  # raises if SQS fails too: never silently lost
    count("MeteringParked")
    log.warning(
        "usage record parked for the sweep",
        extra={"record_id": audit["id"], "error": type(error).__name__, "counters": counters},
    )


def fold_parked(
    repository: UsageRepository | None = None, queue: MeteringQueue | None = None, *, batches: int = 100
) -> int:
    """Fold parked usage records into the counters, each exactly once (a redelivered message, or
    a record whose first write did land after all, finds its audit event there and is not
    counted again); returns how many were counted. A record that fails again stays on the
    queue (SQS redelivers it after its visibility timeout; its DLQ keeps poison ones), the
    others are still folded, and the sweep then raises so the failure shows."""
    repository, queue = repository or UsageRepository(), queue or MeteringQueue()
    folded = 0
    failed: list[Exception] = []
    for _ in range(batches):
        received = queue.receive()
        if not received:
            break
        for receipt, record in received:
            project_id, labels = record["project_id"], record["labels"]
            try:
                folded += repository.record(project_id, labels["day"], record["counters"], labels, record["audit"])
            except (ClientError, BotoCoreError, ParleyError) as error:
                failed.append(error)
                continue
            queue.done(receipt)
    if failed:
        raise RuntimeError(f"{len(failed)} parked usage records could not be folded; they stay queued") from failed[0]
    return folded


def usage_report(
    principal: Principal,
    start: date | None,
    end: date | None,
    group_by: Literal["model", "key"],
    repository: UsageRepository | None = None,
    today: date | None = None,
) -> UsageReport:
    today = today or datetime.now(UTC).date()
    end = end or today
    start = start or end - timedelta(days=29)
    if start > end:
        raise InvalidRequest("start_date must not be after end_date.", param="start_date")
    days = (end - start).days + 1
    if days > MAX_REPORT_DAYS:
        raise InvalidRequest(f"A report covers at most {MAX_REPORT_DAYS} days.", param="start_date")
    repository = repository or UsageRepository()
    groups: dict[str, dict[str, int]] = {}
    for offset in range(days):
        for item in repository.day(principal.project_id, (start + timedelta(days=offset)).isoformat()):
            name = str(item["model"] if group_by == "model" else item["key_id"])
            sums = groups.setdefault(name, {})
            for counter in (
                "requests",
                "failed_requests",
                "prompt_tokens",
                "completion_tokens",
                "cached_tokens",
                "cost_nanos",
                "priced_requests",
                "unpriced_requests",
            ):
                sums[counter] = sums.get(counter, 0) + int(item.get(counter, 0))
    label = "model" if group_by == "model" else "key_id"
    data = [UsageGroup(**{label: name}, **_summary(sums)) for name, sums in sorted(groups.items())]
    totals: dict[str, int] = {}
    for sums in groups.values():
        for counter, value in sums.items():
            totals[counter] = totals.get(counter, 0) + value
    return UsageReport(
        start_date=start.isoformat(),
        end_date=end.isoformat(),
        group_by=group_by,
        price_version=PRICE_VERSION,
        data=data,
        totals=UsageSummary(**_summary(totals)),
    )


def _summary(sums: dict[str, int]) -> dict[str, Any]:
    priced = sums.get("priced_requests", 0) > 0
    return {
        "requests": sums.get("requests", 0),
        "failed_requests": sums.get("failed_requests", 0),
        "prompt_tokens": sums.get("prompt_tokens", 0),
        "completion_tokens": sums.get("completion_tokens", 0),
        "total_tokens": sums.get("prompt_tokens", 0) + sums.get("completion_tokens", 0),
        "cached_tokens": sums.get("cached_tokens", 0),
        # None when no request of the group had a known price; unpriced_requests says how many lack one.
        "cost_usd": float(Decimal(sums.get("cost_nanos", 0)) / NANOS) if priced else None,
        "unpriced_requests": sums.get("unpriced_requests", 0),
    }


AUDIT_PAGES = Pages("audit_events", {"before": str})


def audit_events(
    principal: Principal, limit: int, position: Position | None, repository: UsageRepository | None = None
) -> tuple[list[AuditEvent], Position | None]:
    before = position["before"] if position else None
    events, last = (repository or UsageRepository()).audit_page(principal.project_id, limit, before)
    return [AuditEvent.model_validate(e) for e in events], ({"before": last} if last else None)
