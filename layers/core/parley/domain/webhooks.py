"""Webhooks (issue 14): endpoints that receive Parley's events, signed as the Standard Webhooks
spec says, and the log of their deliveries.

A webhook's signing secret (`whsec_` + base64 of 32 random bytes) is shown once, when the
webhook is created and when its secret is rotated; it lives in Secrets Manager (the record keeps
only its name). After a rotation the previous secret signs too, until `previous_secret_expires_at`.

A delivery is one event for one webhook (its id derives from both, so the same event never makes
two deliveries for one endpoint). Its attempts are logged (the newest ATTEMPT_LOG_LIMIT).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from parley.domain.events import TYPES, matches
from parley.domain.records import ProjectRecord

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's visible prefix, not a secret
SECRET_BYTES = 32  # the spec asks for 24 to 64
DEFAULT_GRACE = timedelta(hours=24)  # how long a rotated-out secret still signs
MAX_GRACE_SECONDS = 7 * 24 * 3600
MAX_EVENT_TYPES = 50
MAX_WEBHOOKS = 50  # per project: every event reads them all
ATTEMPT_LOG_LIMIT = 20  # attempts kept on a delivery (the newest); `attempts` counts them all
# Exact types, `<prefix>.*` for a family of them (a prefix some type has), or `*` for all.
EVENT_TYPE_PATTERN = r"^(\*|[a-z_]+\.\*|[a-z_]+\.[a-z_]+)$"
FAMILIES = frozenset(t.split(".", 1)[0] for t in TYPES)

DeliveryStatus = Literal["pending", "succeeded", "failed"]


def unknown_event_type(pattern: str) -> bool:
    """Whether a webhook's event type filter names nothing Parley sends."""
    if pattern == "*":
        return False
    if pattern.endswith(".*"):
        return pattern[:-2] not in FAMILIES
    return pattern not in TYPES


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


_URL = Field(max_length=2048, description="https (a public host); in local mode also http(s)://127.0.0.1")
_TYPES_DESCRIPTION = "Exact event types (chat.message_sent), a family (chat.*), or * for every event"


class WebhookCreate(_Strict):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={"examples": [{"url": "https://example.com/parley", "event_types": ["chat.*"]}]},
    )

    url: str = _URL
    event_types: list[str] = Field(
        min_length=1,
        max_length=MAX_EVENT_TYPES,
        description=_TYPES_DESCRIPTION,
        json_schema_extra={"items": {"type": "string", "pattern": EVENT_TYPE_PATTERN}},
    )
    enabled: bool = True
    description: str | None = Field(default=None, max_length=512)


class WebhookUpdate(_Strict):
    """PATCH: only the fields present change. `enabled: true` re-enables a disabled endpoint
    (its disabled_reason is cleared); `description: null` clears the description."""

    url: str | None = Field(default=None, max_length=2048)
    event_types: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_EVENT_TYPES,
        description=_TYPES_DESCRIPTION,
        json_schema_extra={"items": {"type": "string", "pattern": EVENT_TYPE_PATTERN}},
    )
    enabled: bool | None = None
    description: str | None = Field(default=None, max_length=512)


class Webhook(BaseModel):
    """A webhook as the API shows it: never its secret."""

    id: str
    object: Literal["webhook"] = "webhook"
    project_id: str
    url: str
    event_types: list[str]
    enabled: bool
    description: str | None = None
    disabled_reason: str | None = Field(
        default=None, description="Why Parley disabled the endpoint (410 Gone, or failing for 5 days)"
    )
    disabled_at: str | None = Field(default=None, description="When Parley disabled the endpoint")
    failing_since: str | None = Field(default=None, description="The first failed attempt since the last success")
    secret_rotated_at: str | None = None
    previous_secret_expires_at: str | None = Field(
        default=None, description="Until then the previous secret signs deliveries too"
    )
    created_at: str
    updated_at: str
    version: int = 1


class WebhookWithSecret(Webhook):
    """A webhook with its signing secret: the answer of create and rotate, and only those."""

    secret: str = Field(description="The signing secret (whsec_...); shown once")


class WebhookRecord(ProjectRecord):
    """A stored webhook: what the API shows, and the name of the secret holding its signing keys."""

    org_id: str | None = None
    url: str
    event_types: list[str]
    enabled: bool = True
    description: str | None = None
    disabled_reason: str | None = None
    disabled_at: str | None = None  # set when Parley disabled it (410, failing), with
    disabled_announced: bool | None = None  # whether webhook.endpoint_disabled went out
    failing_since: str | None = None
    secret_name: str
    secret_rotated_at: str | None = None
    previous_secret_expires_at: str | None = None
    created_at: str
    updated_at: str
    version: int = 1

    def view(self) -> Webhook:
        return Webhook(**self.model_dump(include=set(Webhook.model_fields) - {"object"}))

    def wants(self, event_type: str) -> bool:
        return self.enabled and any(matches(p, event_type) for p in self.event_types)


class DeliveryAttempt(BaseModel):
    """One POST to the endpoint."""

    at: str
    trigger: Literal["scheduled", "manual"]
    status_code: int | None = Field(default=None, description="The endpoint's HTTP status; null when none came")
    latency_ms: int
    outcome: Literal["succeeded", "failed", "gone"]
    error: str | None = Field(default=None, description="Why the attempt failed, when it did")


class Delivery(BaseModel):
    """One event for one webhook."""

    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    webhook_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int = Field(description="Attempts made so far")
    last_status_code: int | None = None
    last_latency_ms: int | None = None
    last_error: str | None = None
    last_attempt_at: str | None = None
    next_attempt_at: str | None = Field(default=None, description="When the next scheduled attempt is due")
    created_at: str
    updated_at: str


class DeliveryDetail(Delivery):
    attempt_log: list[DeliveryAttempt] = Field(
        default_factory=list, description=f"The newest {ATTEMPT_LOG_LIMIT} attempts, oldest first"
    )


class DeliveryRecord(ProjectRecord):
    """A stored delivery (pk = {project}#{webhook}#webhook_deliveries, sk = its id).

    `payload` is the exact body sent (and signed) on every attempt. `scheduled` is the index of
    the scheduled attempt a queue message must name to be acted on (a redelivered message of an
    attempt already made names an older one); `claim` and `claim_until` keep two workers from
    sending the same delivery at once."""

    webhook_id: str
    event_id: str
    event_type: str
    payload: str
    status: DeliveryStatus = "pending"
    attempts: int = 0
    scheduled: int = 0
    claim: str | None = None
    claim_until: str | None = None
    test: bool = False
    last_status_code: int | None = None
    last_latency_ms: int | None = None
    last_error: str | None = None
    last_attempt_at: str | None = None
    next_attempt_at: str | None = None
    attempt_log: list[DeliveryAttempt] = Field(default_factory=list)
    created_at: str
    updated_at: str
    version: int = 1

    def view(self) -> Delivery:
        return Delivery(**self.model_dump(include=set(Delivery.model_fields) - {"object"}))

    def detail(self) -> DeliveryDetail:
        return DeliveryDetail(**self.model_dump(include=set(DeliveryDetail.model_fields) - {"object"}))
