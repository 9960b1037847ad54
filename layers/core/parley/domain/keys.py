"""Projects, API keys and their limits (seeds 002 and 003: everything is scoped by organization
and project; permissions are named per action; a key never grants more than its creator).

Permissions are the route table's action strings `<resource>:<Action>`, `<resource>:*` or `*`.
`ROUTE_ACTIONS` names every action the table uses (a test keeps the two equal) and
`INNER_ACTIONS` those a route checks inside for part of what it does; a key can only be given
permissions that exist (`ACTIONS`, both).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from parley.domain.clock import iso
from parley.domain.records import IdentifiedRecord, ProjectRecord

# Every action of functions/routes.py (tests/unit/test_permissions.py checks they are the same).
ROUTE_ACTIONS = frozenset(
    {
        "agents:CreateAgent",
        "agents:DeleteAgent",
        "agents:GetAgent",
        "agents:ListAgents",
        "agents:RotateAgentSecret",
        "agents:UpdateAgent",
        "api_keys:CreateApiKey",
        "api_keys:DeleteApiKey",
        "api_keys:GetApiKey",
        "api_keys:ListApiKeys",
        "api_keys:RotateApiKey",
        "api_keys:UpdateApiKey",
        "audit:ListAuditEvents",
        "chats:CreateChat",
        "chats:CreateChatCompletion",
        "chats:DeleteChat",
        "chats:GetChat",
        "chats:ListChats",
        "chats:UpdateChat",
        "completions:CreateChatCompletion",
        "conversations:ArchiveConversation",
        "conversations:CreateConversation",
        "conversations:CreateItems",
        "conversations:CreateSession",
        "conversations:CreateThread",
        "conversations:DeleteConversation",
        "conversations:DeleteItem",
        "conversations:GetContext",
        "conversations:GetConversation",
        "conversations:InjectContext",
        "conversations:ListConversations",
        "conversations:ListHandoffs",
        "conversations:ListMessages",
        "conversations:ListSessions",
        "conversations:ListThreads",
        "conversations:RequestHandoff",
        "conversations:ResolveHandoff",
        "conversations:SendMessage",
        "conversations:UnarchiveConversation",
        "conversations:UpdateConversation",
        "documents:CreateDocument",
        "documents:DeleteDocument",
        "documents:GetDocument",
        "documents:ListDocuments",
        "embeddings:CreateEmbedding",
        "indexes:AddDocument",
        "indexes:CreateIndex",
        "indexes:DeleteDocument",
        "indexes:DeleteIndex",
        "indexes:GetDocument",
        "indexes:GetIndex",
        "indexes:ListDocuments",
        "indexes:ListIndexes",
        "indexes:QueryIndex",
        "indexes:UpdateIndex",
        "models:GetModel",
        "models:ListModels",
        "projects:CreateProject",
        "projects:GetProject",
        "projects:ListProjects",
        "projects:UpdateProject",
        "providers:CreateProvider",
        "providers:DeleteProvider",
        "providers:GetProvider",
        "providers:ListProviders",
        "providers:UpdateProvider",
        "responses:CancelResponse",
        "responses:CreateResponse",
        "responses:DeleteResponse",
        "responses:GetResponse",
        "responses:ListInputItems",
        "search:SearchMessages",
        "usage:GetUsage",
        "webhooks:CreateWebhook",
        "webhooks:DeleteWebhook",
        "webhooks:GetWebhook",
        "webhooks:GetWebhookDelivery",
        "webhooks:ListWebhookDeliveries",
        "webhooks:ListWebhooks",
        "webhooks:RetryWebhookDelivery",
        "webhooks:RotateWebhookSecret",
        "webhooks:TestWebhook",
        "webhooks:UpdateWebhook",
    }
)
# Checked inside a route, besides its own: reading hidden context in history (GET .../messages),
# an operator's reply during a handoff (POST .../messages).
INNER_ACTIONS = frozenset({"conversations:ReadHiddenContext", "conversations:PostOperatorMessage"})
ACTIONS = ROUTE_ACTIONS | INNER_ACTIONS
RESOURCES = frozenset(a.split(":", 1)[0] for a in ACTIONS)
# The permission that makes a key an organization administrator: it manages every project of its
# org (and the keys of any of them), not only its own.
ORG_ADMIN = "projects:*"
PROJECT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
NAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"
MAX_PERMISSIONS = 64


def covers(held: tuple[str, ...] | list[str], wanted: str) -> bool:
    """Whether permissions `held` include everything `wanted` grants (a wildcard is covered only
    by the same or a wider wildcard)."""
    if wanted == "*":
        return "*" in held
    resource, action = wanted.split(":", 1)
    if action == "*":
        return "*" in held or f"{resource}:*" in held
    return any(p in ("*", wanted, f"{resource}:*") for p in held)


def check_permission(value: str) -> str:
    if value == "*":
        return value
    if not re.fullmatch(r"[a-z_]+:(\*|[A-Z][A-Za-z]+)", value):
        raise ValueError(f"{value!r} is not a permission: use <resource>:<Action>, <resource>:* or *")
    resource = value.split(":", 1)[0]
    if resource not in RESOURCES:
        raise ValueError(f"{value!r}: there is no resource {resource!r}; the resources are {sorted(RESOURCES)}")
    if not value.endswith(":*") and value not in ACTIONS:
        raise ValueError(f"{value!r} is not an action of the API")
    return value


def parse_time(value: str) -> datetime:
    """An RFC 3339 time with an offset (`2027-01-01T00:00:00Z`), in UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 time such as 2027-01-01T00:00:00Z") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone offset (end it with Z or +00:00)")
    return parsed.astimezone(UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class Limits(_Strict):
    """Rate limits (one-minute fixed windows, as OpenAI's RPM and TPM) and a monthly spend budget
    (UTC calendar month). A missing field means no limit of that kind."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)  # a Principal holds it
    requests_per_minute: int | None = Field(default=None, ge=1, le=10_000_000)
    tokens_per_minute: int | None = Field(default=None, ge=1, le=10_000_000_000)
    monthly_budget_usd: float | None = Field(default=None, ge=0, le=1_000_000_000)

    def empty(self) -> bool:
        return all(v is None for v in self.model_dump().values())


class ProjectLimits(Limits):
    """A project's limits; `user_monthly_budget_usd` applies to each end user (`user` on
    completions, the conversation's `user_id` on sends) on its own."""

    user_monthly_budget_usd: float | None = Field(default=None, ge=0, le=1_000_000_000)


class ProjectCreate(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    limits: ProjectLimits | None = None


class ProjectUpdate(_Strict):
    """PATCH: fields present change; `limits` replaces the limits as a whole (`null` clears them)."""

    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    limits: ProjectLimits | None = None


class Project(BaseModel):
    id: str
    object: Literal["project"] = "project"
    org_id: str
    name: str
    limits: ProjectLimits = Field(default_factory=ProjectLimits)
    created_at: str
    updated_at: str


class ProjectStored(IdentifiedRecord):
    org_id: str
    name: str
    limits: dict[str, Any] | None = None
    created_at: str
    updated_at: str
    version: int = 1

    def view(self) -> Project:
        return Project(
            id=self.id,
            org_id=self.org_id,
            name=self.name,
            limits=ProjectLimits(**(self.limits or {})),
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


def _permissions(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    if not values:
        raise ValueError("a key needs at least one permission")
    if len(set(values)) != len(values):
        raise ValueError("a permission is given twice")
    return [check_permission(v) for v in values]


def _expiry(value: str | None) -> str | None:
    if value is None:
        return None
    when = parse_time(value)
    if when <= datetime.now(UTC):
        raise ValueError("expires_at is in the past")
    return iso(when)  # the clock's format, so expiry compares as text with iso(now)


class ApiKeyCreate(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    project_id: str | None = Field(
        default=None, pattern=PROJECT_ID_PATTERN, description="Default: the calling key's project"
    )
    permissions: list[str] | None = Field(
        default=None, max_length=MAX_PERMISSIONS, description="Default: the calling key's permissions"
    )
    expires_at: str | None = Field(default=None, description="RFC 3339; default: never (or the caller's expiry)")
    limits: Limits | None = None

    _permissions = field_validator("permissions")(_permissions)
    _expiry = field_validator("expires_at")(_expiry)


class ApiKeyUpdate(_Strict):
    """PATCH: a key's name and limits (its permissions and expiry are fixed at creation)."""

    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    limits: Limits | None = None


class ApiKey(BaseModel):
    id: str
    object: Literal["api_key"] = "api_key"
    name: str
    org_id: str
    project_id: str
    permissions: list[str]
    prefix: str = Field(description="The first characters of the secret, to recognise the key")
    limits: Limits = Field(default_factory=Limits)
    expires_at: str | None = None
    last_used_at: str | None = None
    created_at: str
    rotated_at: str | None = None


class ApiKeyWithSecret(ApiKey):
    secret: str = Field(description="Shown once, at create and rotate; Parley keeps only its hash")


class ApiKeyStored(ProjectRecord):
    """The listable record of a key (the `chats` table, kind api_keys); the authorizer's item in
    the `keys` table is keyed by the secret's hash."""

    org_id: str
    name: str
    permissions: list[str]
    prefix: str
    key_hash: str
    limits: dict[str, Any] | None = None
    expires_at: str | None = None
    last_used_at: str | None = None
    created_at: str
    updated_at: str
    rotated_at: str | None = None
    created_by: str | None = None
    idempotency: str | None = None
    version: int = 1

    def view(self) -> ApiKey:
        shown = self.model_dump(include=set(ApiKey.model_fields) - {"object", "limits"})
        return ApiKey(**shown, limits=Limits(**(self.limits or {})))


class Quota(BaseModel):
    """Where a request left the rate limits it counted against (the tighter of project and key
    for each kind), for OpenAI's x-ratelimit-* headers."""

    requests_limit: int | None = None
    requests_remaining: int | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    reset_seconds: float = 0.0
