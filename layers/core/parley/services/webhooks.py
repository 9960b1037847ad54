"""Webhooks: the endpoints (create, read, update, delete, rotate the signing secret), and the
delivery of Parley's events to them, signed (Standard Webhooks), retried and logged.

The pipeline (both halves are SQS consumers, functions/webhooks_fanout and webhooks_deliver):

1. `fan_out`: an event from the events queue (EventBridge's rule puts every Parley event there)
   becomes one delivery per enabled webhook of its project whose event_types match. The
   delivery id derives from the event id and the webhook id, so a redelivered event finds the
   delivery it made and makes no second one; then one message per delivery goes on the
   deliveries queue: {"v": 1, "project_id", "webhook_id", "delivery_id", "attempt", "due_at"}.
2. `deliver`: a message names the scheduled attempt it is for (`attempt`: 0 first, then one per
   retry) and when it is due. A message whose attempt was made already (a redelivery) does
   nothing; one that comes before it is due (SQS delays stop at 900 s) is sent again with the
   rest of the delay. Before the POST the delivery is claimed (a conditional write), so two
   workers never send the same attempt; the attempt is then recorded on the delivery.
3. Outcomes: 2xx succeeded; 410 Gone disables the endpoint (disabled_reason) and ends the
   delivery; anything else (another status, a timeout after TIMEOUT, a connection error, a URL
   the egress guard refuses) is retried after SCHEDULE[n] (5 s, 5 min, 30 min, 2 h, 5 h,
   10 h, each +-JITTER), and after the last the delivery is `failed`. A failed delivery is
   the dead letter: it stays in the log (GET .../deliveries?status=failed) with every attempt,
   and POST .../retry sends it again. The SQS dead-letter queue gets only messages that could
   not be processed (Parley's storage failed, a malformed message): the handlers report those
   (ReportBatchItemFailures), never an endpoint's failure, which is a scheduled retry.
4. An endpoint whose attempts have failed without a success for FAILING_LIMIT (5 days) is
   disabled, as is one that answered 410; either way a `webhook.endpoint_disabled` event goes
   to the project's other endpoints that subscribe to it (through `fan_out`, so it is a delivery
   like any other). It is not put on the EventBridge bus: Parley's events come from committed
   writes through the stream emitter, and the chats table (webhooks) has no stream.

Manual attempts (POST .../retry, and POST .../test, which makes a `webhook.test` delivery) run
at once in the API's function, through the same claim, signing and recording. A manual attempt
that fails leaves a scheduled delivery's schedule as it was; a test delivery, or a delivery
that had finished, is then `failed` (retry it again by hand).
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from parley.domain.clock import iso
from parley.domain.errors import Conflict, InvalidRequest, NotFound, ParleyError, ProviderError
from parley.domain.events import WebhookDisabled, WebhookDisabledData, WebhookTest, WebhookTestData
from parley.domain.ids import derived_id, has_prefix, new_id, ulid
from parley.domain.keys import parse_time
from parley.domain.paging import Pages, Position
from parley.domain.principal import Principal
from parley.domain.signatures import headers as signed_headers
from parley.domain.signatures import new_secret
from parley.domain.webhooks import (
    ATTEMPT_LOG_LIMIT,
    DEFAULT_GRACE,
    EVENT_TYPE_PATTERN,
    MAX_WEBHOOKS,
    Delivery,
    DeliveryAttempt,
    DeliveryDetail,
    DeliveryRecord,
    DeliveryStatus,
    Webhook,
    WebhookCreate,
    WebhookRecord,
    WebhookUpdate,
    WebhookWithSecret,
    unknown_event_type,
)
from parley.egress import EgressRefused, Resolver
from parley.metrics import count
from parley.providers.http import make_client
from parley.services import once
from parley.services.urls import check_callback_url
from parley.storage.queues import MAX_DELAY_SECONDS, DeliveriesQueue
from parley.storage.secrets import SecretStore, secrets
from parley.storage.webhooks import DeliveryRepository, WebhookRepository, WebhookSecret, secret_name

log = logging.getLogger(__name__)

SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
JITTER = 0.1  # each wait is SCHEDULE[n] times a factor drawn from [1 - JITTER, 1 + JITTER]
TIMEOUT = httpx.Timeout(10.0)
CLAIM = timedelta(seconds=120)  # longer than an attempt (10 s) and its recording take
FAILING_LIMIT = timedelta(days=5)
SECRET_DESCRIPTION = "Parley webhook signing secret"  # noqa: S105 - a description
USER_AGENT = "Parley-Webhooks/1"
WEBHOOK_PAGES = Pages("webhooks", {"after": str})
DELIVERY_PAGES = Pages("webhook_deliveries", {"after": str})
_TYPE_RE = re.compile(EVENT_TYPE_PATTERN)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    """What the service talks to; tests inject their own (a clock, an httpx transport...)."""

    webhooks: WebhookRepository = field(default_factory=WebhookRepository)
    deliveries: DeliveryRepository = field(default_factory=DeliveryRepository)
    secrets: SecretStore = field(default_factory=secrets)
    queue: DeliveriesQueue = field(default_factory=DeliveriesQueue)
    clock: Callable[[], datetime] = _utcnow
    jitter: Callable[[], float] = random.random  # [0, 1)
    transport: httpx.BaseTransport | None = None  # None: the egress guard (outside local mode)
    resolver: Resolver | None = None


_override: Deps | None = None


def set_deps(deps: Deps | None) -> None:
    """Inject the dependencies every call without its own uses (tests); None restores the defaults."""
    global _override
    _override = deps


def _deps(deps: Deps | None) -> Deps:
    return deps or _override or Deps()


# --- endpoints -----------------------------------------------------------------------------------


def _check_url(url: str, deps: Deps) -> str:
    """https to a public host; in local mode also http(s) to loopback (a receiver on 127.0.0.1)."""
    return check_callback_url(url, param="url", resolver=deps.resolver)


def _check_types(types: list[str]) -> list[str]:
    for i, pattern in enumerate(types):
        if not _TYPE_RE.fullmatch(pattern) or unknown_event_type(pattern):
            raise InvalidRequest(
                f"{pattern!r} is not a Parley event type: use an exact type (chat.message_sent), a family "
                "(chat.*) or *.",
                code="unknown_event_type",
                param=f"event_types[{i}]",
            )
    return list(dict.fromkeys(types))


def _load(principal: Principal, webhook_id: str, deps: Deps) -> WebhookRecord:
    record = deps.webhooks.get(principal.project_id, webhook_id) if has_prefix(webhook_id, "whk") else None
    if record is None:
        raise NotFound(f"No webhook {webhook_id!r}.", code="webhook_not_found")
    return record


def _already_created(earlier: tuple[str, str], fingerprint: str) -> Conflict:
    return once.already_created(
        earlier,
        fingerprint,
        what="webhook",
        rotate="rotate it (POST /v1/webhooks/{id}/rotate)",
        code="webhook_already_created",
    )


def create(
    principal: Principal, body: WebhookCreate, idempotency_key: str | None = None, deps: Deps | None = None
) -> WebhookWithSecret:
    """A new webhook and its signing secret (in this answer only). With an Idempotency-Key a
    retry never makes a second webhook: it answers 409 naming the one made."""
    deps = _deps(deps)
    url = _check_url(body.url, deps)
    types = _check_types(body.event_types)
    marker = None
    if idempotency_key is not None:
        marker = (once.marker(principal.project_id, idempotency_key), once.fingerprint(body))
        earlier = deps.webhooks.by_idempotency(principal.project_id, marker[0])
        if earlier is not None:
            raise _already_created(earlier, marker[1])
    if len(deps.webhooks.page(principal.project_id, MAX_WEBHOOKS, None)[0]) >= MAX_WEBHOOKS:
        raise InvalidRequest(
            f"A project has at most {MAX_WEBHOOKS} webhooks; delete one first.", code="webhook_limit_reached"
        )
    webhook_id = new_id("whk")
    secret = new_secret()
    now = iso(deps.clock())
    name = secret_name(principal.project_id, webhook_id)
    record = WebhookRecord(
        id=webhook_id,
        project_id=principal.project_id,
        org_id=principal.org_id,
        url=url,
        event_types=types,
        enabled=body.enabled,
        description=body.description,
        secret_name=name,
        created_at=now,
        updated_at=now,
    )
    deps.secrets.create(name, WebhookSecret(current=secret).encode(), principal.project_id, SECRET_DESCRIPTION)
    try:
        deps.webhooks.create(record, marker)
    except Exception:
        deps.secrets.delete(name)  # no secret outlives a webhook that was never stored
        if marker is not None:
            earlier = deps.webhooks.by_idempotency(principal.project_id, marker[0])
            if earlier is not None:  # a concurrent twin won
                raise _already_created(earlier, marker[1]) from None
        raise
    return WebhookWithSecret(**record.view().model_dump(), secret=secret)


def get(principal: Principal, webhook_id: str, deps: Deps | None = None) -> Webhook:
    return _load(principal, webhook_id, _deps(deps)).view()


def list_webhooks(
    principal: Principal, limit: int, position: Position | None, deps: Deps | None = None
) -> tuple[list[Webhook], Position | None]:
    deps = _deps(deps)
    records, last = deps.webhooks.page(principal.project_id, limit, position["after"] if position else None)
    return [r.view() for r in records], ({"after": last} if last else None)


def update(principal: Principal, webhook_id: str, body: WebhookUpdate, deps: Deps | None = None) -> Webhook:
    deps = _deps(deps)
    record = _load(principal, webhook_id, deps)
    fields = body.model_fields_set
    changes: dict[str, Any] = {"updated_at": iso(deps.clock()), "version": record.version + 1}
    for name in ("url", "event_types", "enabled"):
        if name in fields and getattr(body, name) is None:
            raise InvalidRequest(f"A webhook's {name} cannot be removed.", param=name)
    if body.url is not None:
        changes["url"] = _check_url(body.url, deps)
    if body.event_types is not None:
        changes["event_types"] = _check_types(body.event_types)
    if body.enabled is not None:
        changes["enabled"] = body.enabled
        if body.enabled and not record.enabled:  # re-enabled: a fresh start
            changes |= dict.fromkeys(("disabled_reason", "disabled_at", "disabled_announced", "failing_since"))
    if "description" in fields:
        changes["description"] = body.description
    updated = record.model_copy(update=changes)
    deps.webhooks.replace(updated, record.version)
    return updated.view()


def delete(principal: Principal, webhook_id: str, deps: Deps | None = None) -> None:
    """The webhook and its secret. Its deliveries stay in the table (a pending one ends `failed`
    at its next attempt), unreachable through the API."""
    deps = _deps(deps)
    record = _load(principal, webhook_id, deps)
    if not deps.webhooks.delete(principal.project_id, record.id):
        raise NotFound(f"No webhook {webhook_id!r}.", code="webhook_not_found")
    deps.secrets.delete(record.secret_name)


def rotate(
    principal: Principal, webhook_id: str, grace_seconds: int | None = None, deps: Deps | None = None
) -> WebhookWithSecret:
    """A new signing secret, in this answer only. The previous one keeps signing deliveries
    (beside the new one, as the spec allows) for `grace_seconds` (24 h by default; 0 ends it now)."""
    deps = _deps(deps)
    record = _load(principal, webhook_id, deps)
    at = deps.clock()
    grace = DEFAULT_GRACE if grace_seconds is None else timedelta(seconds=grace_seconds)
    before = deps.secrets.get(record.secret_name, fresh=True)
    old = WebhookSecret.decode(before)
    secret = new_secret()
    until = iso(at + grace) if grace > timedelta(0) else None
    new = WebhookSecret(
        current=secret, rotated_at=iso(at), previous=old.current if until else None, previous_until=until
    )
    deps.secrets.put(record.secret_name, new.encode())
    updated = record.model_copy(
        update={
            "secret_rotated_at": iso(at),
            "previous_secret_expires_at": until,
            "updated_at": iso(at),
            "version": record.version + 1,
        }
    )
    try:
        deps.webhooks.replace(updated, record.version)
    except Exception:
        deps.secrets.put(record.secret_name, before)  # the record still shows the old rotation: so must the secret
        raise
    return WebhookWithSecret(**updated.view().model_dump(), secret=secret)


def _signing_secrets(webhook: WebhookRecord, now: datetime, deps: Deps) -> list[str]:
    """The secrets a delivery is signed with now; read again (past the cache) when the webhook
    shows a rotation the cached value does not have."""
    try:
        stored = WebhookSecret.decode(deps.secrets.get(webhook.secret_name))
        if stored.rotated_at != webhook.secret_rotated_at:
            stored = WebhookSecret.decode(deps.secrets.get(webhook.secret_name, fresh=True))
    except ProviderError as unreadable:  # what the secret store raises; about a provider's key, not this
        raise ParleyError("The webhook's signing secret could not be read.", code="webhook_secret_unavailable") from (
            unreadable
        )
    return stored.signing(iso(now))


# --- deliveries: the log -------------------------------------------------------------------------


def list_deliveries(
    principal: Principal,
    webhook_id: str,
    limit: int,
    position: Position | None,
    status: DeliveryStatus | None = None,
    deps: Deps | None = None,
) -> tuple[list[Delivery], Position | None]:
    deps = _deps(deps)
    webhook = _load(principal, webhook_id, deps)
    scope = DeliveryRepository.scope(principal.project_id, webhook.id)
    records, last = deps.deliveries.filtered_page(scope, limit, position["after"] if position else None, status)
    return [r.view() for r in records], ({"after": last} if last else None)


def _load_delivery(principal: Principal, webhook: WebhookRecord, delivery_id: str, deps: Deps) -> DeliveryRecord:
    scope = DeliveryRepository.scope(principal.project_id, webhook.id)
    record = deps.deliveries.get(scope, delivery_id) if has_prefix(delivery_id, "dlv") else None
    if record is None:
        raise NotFound(f"No delivery {delivery_id!r} of this webhook.", code="delivery_not_found")
    return record


def get_delivery(principal: Principal, webhook_id: str, delivery_id: str, deps: Deps | None = None) -> DeliveryDetail:
    deps = _deps(deps)
    return _load_delivery(principal, _load(principal, webhook_id, deps), delivery_id, deps).detail()


def _enabled(principal: Principal, webhook_id: str, deps: Deps) -> WebhookRecord:
    webhook = _load(principal, webhook_id, deps)
    if not webhook.enabled:
        raise Conflict(
            f"The webhook {webhook_id} is disabled ({webhook.disabled_reason or 'by request'}); enable it first.",
            code="webhook_disabled",
        )
    return webhook


def retry(principal: Principal, webhook_id: str, delivery_id: str, deps: Deps | None = None) -> DeliveryDetail:
    """A new attempt now, whatever the delivery's status."""
    deps = _deps(deps)
    webhook = _enabled(principal, webhook_id, deps)
    record = _load_delivery(principal, webhook, delivery_id, deps)
    claimed = _claim(record, f"m{ulid()}", deps)
    if claimed is None:
        raise Conflict(
            "An attempt of this delivery is in progress; retry in a moment.",
            code="delivery_in_progress",
            headers={"Retry-After": "10"},
        )
    return _attempt(claimed, "manual", deps).detail()


def send_test(principal: Principal, webhook_id: str, deps: Deps | None = None) -> DeliveryDetail:
    """A `webhook.test` event to this endpoint, attempted now (once; retry it by hand)."""
    deps = _deps(deps)
    webhook = _enabled(principal, webhook_id, deps)
    at = deps.clock()
    event = WebhookTest(
        id=new_id("evt"),
        created_at=iso(at),
        project_id=principal.project_id,
        org_id=principal.org_id,
        data=WebhookTestData(webhook_id=webhook.id),
    )
    token = f"m{ulid()}"
    record = _new_delivery(event.model_dump(mode="json"), webhook, at, test=True).model_copy(
        update={"claim": token, "claim_until": iso(at + CLAIM)}
    )
    _insert(record, deps)
    return _attempt(record, "manual", deps).detail()


def _insert(record: DeliveryRecord, deps: Deps) -> None:
    if not deps.deliveries.insert(record):
        raise Conflict(f"A delivery {record.id!r} exists already.", code="already_exists")


# --- deliveries: the pipeline --------------------------------------------------------------------


class _EventHead(BaseModel):
    """What fan-out reads of an event (the rest goes to the endpoint as it came)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(pattern=r"^evt_[0-9A-HJKMNP-TV-Z]{26}$")
    type: str = Field(min_length=1, max_length=200)
    project_id: str = Field(min_length=1)
    created_at: str


class DeliveryMessage(BaseModel):
    """A message of the deliveries queue: one scheduled attempt of one delivery."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    project_id: str
    webhook_id: str
    delivery_id: str
    attempt: int = Field(ge=0)
    due_at: str


def _ms(stamp: str, fallback: datetime) -> int:
    try:
        return int(parse_time(stamp).timestamp() * 1000)
    except ValueError:
        return int(fallback.timestamp() * 1000)


def _new_delivery(detail: Mapping[str, Any], webhook: WebhookRecord, at: datetime, *, test: bool) -> DeliveryRecord:
    head = _EventHead.model_validate(detail)
    now = iso(at)
    return DeliveryRecord(
        id=derived_id("dlv", _ms(head.created_at, at), f"{head.id}\n{webhook.id}"),
        project_id=webhook.project_id,
        webhook_id=webhook.id,
        event_id=head.id,
        event_type=head.type,
        payload=json.dumps(dict(detail), separators=(",", ":")),
        test=test,
        next_attempt_at=None if test else now,
        created_at=now,
        updated_at=now,
    )


def event_of(message_body: str) -> dict[str, Any]:
    """The Parley event (the envelope) an events-queue message carries: EventBridge's event JSON
    with the envelope as its `detail`. ValueError for anything else."""
    document = json.loads(message_body)
    detail = document.get("detail") if isinstance(document, dict) else None
    if not isinstance(detail, dict):
        raise ValueError("the message is not an EventBridge event with a detail object")
    return detail


def fan_out(
    detail: Mapping[str, Any], deps: Deps | None = None, *, exclude: str | None = None, announce: bool = True
) -> list[DeliveryRecord]:
    """One delivery per enabled webhook of the event's project that wants its type (idempotent:
    a redelivered event finds its deliveries), each queued for its first attempt. On the way, a
    disabled endpoint whose announcement did not go out (`_announce`) is announced."""
    deps = _deps(deps)
    head = _EventHead.model_validate(detail)
    at = deps.clock()
    made: list[DeliveryRecord] = []
    for webhook in deps.webhooks.all_of(head.project_id):
        if announce and webhook.id != exclude and _unannounced(webhook):
            _announce(webhook, deps)
        if webhook.id == exclude or not webhook.wants(head.type):
            continue
        stored = deps.deliveries.put_if_absent(_new_delivery(detail, webhook, at, test=False))
        if stored.status == "pending" and stored.scheduled == 0:
            # also when found: a first run may have stored it and failed before queueing it
            # (a second message is harmless: the attempt is claimed once)
            _enqueue(stored, deps)
        made.append(stored)
    return made


def _enqueue(record: DeliveryRecord, deps: Deps) -> None:
    due = record.next_attempt_at or iso(deps.clock())
    message = DeliveryMessage(
        project_id=record.project_id,
        webhook_id=record.webhook_id,
        delivery_id=record.id,
        attempt=record.scheduled,
        due_at=due,
    )
    deps.queue.send(message.model_dump(), _seconds_until(due, deps))


def _seconds_until(stamp: str, deps: Deps) -> int:
    """The message's delay: until `stamp`, but at most SQS's 900 s (a message that comes early
    goes back on the queue with the rest)."""
    remaining = (parse_time(stamp) - deps.clock()).total_seconds()
    return max(0, min(MAX_DELAY_SECONDS, math.ceil(remaining)))


def deliver(body: Mapping[str, Any], deps: Deps | None = None) -> str:
    """Act on a deliveries-queue message: what was done (`attempted`, `waiting`, `stale`,
    `requeued`, `missing`)."""
    deps = _deps(deps)
    message = DeliveryMessage.model_validate(body)
    scope = DeliveryRepository.scope(message.project_id, message.webhook_id)
    for _ in range(5):
        record = deps.deliveries.get(scope, message.delivery_id)
        if record is None:
            log.warning("webhook delivery not found", extra={"delivery_id": message.delivery_id})
            return "missing"
        now = deps.clock()
        if record.status != "pending" or record.scheduled != message.attempt:
            if record.status == "pending" and record.scheduled == message.attempt + 1 and not _claimed(record, now):
                # this message's attempt was made and recorded; the message of the next one may
                # have been lost with the invocation that recorded it
                _enqueue(record, deps)
                return "requeued"
            return "stale"
        due = parse_time(message.due_at)
        if _claimed(record, now) and record.claim_until is not None:
            due = max(due, parse_time(record.claim_until))
        if now < due:
            deps.queue.send(message.model_dump(), _seconds_until(iso(due), deps))
            return "waiting"
        claimed = _claim(record, f"s{message.attempt}", deps)
        if claimed is None:
            continue  # another worker wrote first: read again
        _attempt(claimed, "scheduled", deps)
        return "attempted"
    raise Conflict(f"The delivery {message.delivery_id} kept changing.", code="concurrent_update")


def _claimed(record: DeliveryRecord, now: datetime) -> bool:
    return record.claim_until is not None and parse_time(record.claim_until) > now


def _claim(record: DeliveryRecord, token: str, deps: Deps) -> DeliveryRecord | None:
    """The delivery claimed for one attempt, or None when someone else holds it or wrote first."""
    now = deps.clock()
    if _claimed(record, now):
        return None
    claimed = record.model_copy(update={"claim": token, "claim_until": iso(now + CLAIM), "version": record.version + 1})
    try:
        deps.deliveries.replace(claimed, record.version)
    except Conflict:
        return None
    return claimed


Outcome = Literal["succeeded", "failed", "gone"]


def _post(webhook: WebhookRecord, record: DeliveryRecord, at: datetime, trigger: str, deps: Deps) -> DeliveryAttempt:
    """One signed POST of the delivery's payload; never raises for what the endpoint does."""
    # the secrets first: failing to read them is Parley's failure (the message is retried), not the endpoint's
    headers = signed_headers(_signing_secrets(webhook, at, deps), record.event_id, int(at.timestamp()), record.payload)
    headers |= {"content-type": "application/json", "user-agent": USER_AGENT}
    status: int | None = None
    error: str | None = None
    started = time.monotonic()
    try:
        with (
            make_client(deps.transport, TIMEOUT) as client,
            client.stream("POST", webhook.url, content=record.payload.encode(), headers=headers) as response,
        ):
            status = response.status_code  # the body is never read: whatever its size, it is not wanted
    except EgressRefused as refused:
        error = f"the URL {refused}"
    except httpx.TimeoutException:
        error = f"no answer within {TIMEOUT.read:.0f} s"
    except httpx.HTTPError as failure:
        error = f"the request failed ({type(failure).__name__})"
    latency = int((time.monotonic() - started) * 1000)
    outcome: Outcome = "failed"
    if status is not None:
        if 200 <= status < 300:
            outcome = "succeeded"
        elif status == 410:
            outcome = "gone"
        else:
            error = f"the endpoint answered {status}"
    return DeliveryAttempt(
        at=iso(at),
        trigger="manual" if trigger == "manual" else "scheduled",
        status_code=status,
        latency_ms=latency,
        outcome=outcome,
        error=error,
    )


def _recorded(
    record: DeliveryRecord, attempt: DeliveryAttempt | None, trigger: str, reason: str | None, deps: Deps
) -> DeliveryRecord:
    """The delivery after an attempt (or, with `reason` and no attempt, after it could not be made)."""
    now = deps.clock()
    changes: dict[str, Any] = {
        "claim": None,
        "claim_until": None,
        "updated_at": iso(now),
        "version": record.version + 1,
    }
    outcome = attempt.outcome if attempt is not None else "gone"
    if attempt is not None:
        changes |= {
            "attempts": record.attempts + 1,
            "attempt_log": [*record.attempt_log, attempt][-ATTEMPT_LOG_LIMIT:],
            "last_status_code": attempt.status_code,
            "last_latency_ms": attempt.latency_ms,
            "last_error": attempt.error,
            "last_attempt_at": attempt.at,
        }
    else:
        changes["last_error"] = reason
    scheduled_on = record.status == "pending" and record.next_attempt_at is not None
    if outcome == "succeeded":
        changes |= {"status": "succeeded", "next_attempt_at": None}
    elif outcome == "gone":
        changes |= {"status": "failed", "next_attempt_at": None}
    elif trigger == "manual":
        changes["status"] = "pending" if scheduled_on else "failed"
    elif record.scheduled < len(SCHEDULE):
        wait = SCHEDULE[record.scheduled] * (1 - JITTER + 2 * JITTER * deps.jitter())
        changes |= {"status": "pending", "scheduled": record.scheduled + 1, "next_attempt_at": iso(now + wait)}
    else:
        changes |= {"status": "failed", "next_attempt_at": None}
    return record.model_copy(update=changes)


def _attempt(record: DeliveryRecord, trigger: str, deps: Deps) -> DeliveryRecord:
    """Make the claimed delivery's attempt, record it, and follow up: the endpoint's health,
    the next scheduled attempt's message."""
    at = deps.clock()
    webhook = deps.webhooks.get(record.project_id, record.webhook_id)
    attempt = None
    reason = None
    if webhook is None:
        reason = "the webhook was deleted"
    elif not webhook.enabled:
        reason = f"the endpoint is disabled ({webhook.disabled_reason or 'by request'})"
        if _unannounced(webhook):
            _announce(webhook, deps)
    else:
        attempt = _post(webhook, record, at, trigger, deps)
    count(f"WebhookAttempt{attempt.outcome.capitalize()}" if attempt else "WebhookAttemptSkipped")
    done = _save(record, attempt, trigger, reason, deps)
    if webhook is not None and attempt is not None:
        _health(webhook, attempt, deps)
    if done.status == "pending" and done.scheduled != record.scheduled:
        _enqueue(done, deps)
    return done


def _save(
    record: DeliveryRecord, attempt: DeliveryAttempt | None, trigger: str, reason: str | None, deps: Deps
) -> DeliveryRecord:
    """Record the attempt; should the delivery have changed meanwhile (a claim that outlived
    CLAIM), on top of what it is now."""
    current = record
    for _ in range(5):
        done = _recorded(current, attempt, trigger, reason, deps)
        try:
            deps.deliveries.replace(done, current.version)
        except Conflict:
            fresh = deps.deliveries.get(deps.deliveries.scope_of(record), record.id)
            if fresh is None:
                raise
            current = fresh
            continue
        return done
    raise Conflict(f"The delivery {record.id} kept changing.", code="concurrent_update")


def _health(webhook: WebhookRecord, attempt: DeliveryAttempt, deps: Deps) -> None:
    """The endpoint's failing streak: started by a failure, ended by a success; after
    FAILING_LIMIT of it, or at a 410, the endpoint is disabled."""
    now = deps.clock()
    project, webhook_id = webhook.project_id, webhook.id
    if attempt.outcome == "succeeded":
        if webhook.failing_since is not None:
            deps.webhooks.mark_succeeding(project, webhook_id)
        return
    if attempt.outcome == "gone":
        _disable(webhook, "the endpoint answered 410 Gone", now, deps)
        return
    if webhook.failing_since is None:
        deps.webhooks.mark_failing(project, webhook_id, attempt.at)
    elif now - parse_time(webhook.failing_since) >= FAILING_LIMIT:
        _disable(webhook, f"every attempt since {webhook.failing_since} failed (5 days)", now, deps)


def _disable(webhook: WebhookRecord, reason: str, at: datetime, deps: Deps) -> None:
    if not deps.webhooks.disable(webhook.project_id, webhook.id, reason, iso(at)):
        return  # disabled (or deleted) already: announced by whoever did it
    count("WebhookDisabled")
    log.warning("webhook disabled", extra={"webhook_id": webhook.id, "reason": reason})
    disabled = webhook.model_copy(
        update={"enabled": False, "disabled_reason": reason, "disabled_at": iso(at), "disabled_announced": False}
    )
    _announce(disabled, deps)


def _unannounced(webhook: WebhookRecord) -> bool:
    """Disabled by Parley, and the event saying so not yet handed to the other endpoints."""
    return not webhook.enabled and webhook.disabled_at is not None and not webhook.disabled_announced


def _announce(webhook: WebhookRecord, deps: Deps) -> None:
    """The `webhook.endpoint_disabled` event, to the project's other endpoints that want it, then
    marked done. Its id derives from the webhook and when it was disabled, so announcing again
    (after a failure between the disable and the mark: the next event of the project, or the
    next attempt of one of its deliveries, tries again) makes no second delivery."""
    assert webhook.disabled_at is not None
    at = parse_time(webhook.disabled_at)
    event = WebhookDisabled(
        id=derived_id(
            "evt", int(at.timestamp() * 1000), f"webhook.endpoint_disabled\n{webhook.id}\n{webhook.disabled_at}"
        ),
        created_at=webhook.disabled_at,
        project_id=webhook.project_id,
        org_id=webhook.org_id,
        data=WebhookDisabledData(
            webhook_id=webhook.id,
            url=webhook.url,
            reason=webhook.disabled_reason or "disabled",
            failing_since=webhook.failing_since,
        ),
    )
    fan_out(event.model_dump(mode="json"), deps, exclude=webhook.id, announce=False)
    deps.webhooks.mark_announced(webhook.project_id, webhook.id, webhook.disabled_at)
