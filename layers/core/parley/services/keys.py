"""Projects and API keys: issuing, authenticating, listing, narrowing, rotating, revoking.

A key never grants more than the key that makes it: each permission must be covered by the
creator's, its expiry may not be later than the creator's, each of its limits may not be looser
than the creator's own, and a key for another project of the org needs an org administrator
(`projects:*` or `*`). The secret is returned once (create, rotate) and stored only as a hash.

Revocation (DELETE) deletes the key's items: the next authorization of its secret fails.
API Gateway caches an authorization for `RouteTable.authorizer_cache_seconds` (30 s), so a
revoked or rotated-out secret is refused within that bound; an expired key is refused at once
(every request checks `expires_at`, cached or not).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from parley.domain.clock import iso
from parley.domain.errors import Conflict, InvalidRequest, NotFound
from parley.domain.ids import has_prefix, new_id
from parley.domain.keys import (
    ORG_ADMIN,
    ApiKey,
    ApiKeyCreate,
    ApiKeyStored,
    ApiKeyUpdate,
    ApiKeyWithSecret,
    Limits,
    Project,
    ProjectCreate,
    ProjectLimits,
    ProjectStored,
    ProjectUpdate,
    covers,
)
from parley.domain.paging import Pages, Position
from parley.domain.principal import Principal
from parley.metrics import count
from parley.services import once
from parley.storage.keys import ApiKeyRecord, KeyRepository, ProjectRepository, hash_secret

SECRET_PREFIX = "prl_"  # noqa: S105 - a visible prefix, not a secret
LAST_USED_INTERVAL = timedelta(minutes=1)  # last_used_at is written at most this often per key
KEY_PAGES = Pages("api_keys", {"after": str})
PROJECT_PAGES = Pages("projects", {"after": str})


@dataclass
class Deps:
    keys: KeyRepository = field(default_factory=KeyRepository)
    projects: ProjectRepository = field(default_factory=ProjectRepository)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def _deps(deps: Deps | None) -> Deps:
    return deps or Deps()


@dataclass(frozen=True)
class IssuedKey:
    secret: str  # shown once, never stored
    record: ApiKeyRecord
    listed: ApiKeyStored | None = None


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _limits_dict(limits: Limits | None) -> dict[str, Any] | None:
    dumped = limits.model_dump(exclude_none=True) if limits is not None else {}
    return dumped or None


def issue_key(
    org_id: str,
    project_id: str,
    permissions: tuple[str, ...] = ("*",),
    *,
    name: str = "",
    secret: str | None = None,
    repository: KeyRepository | None = None,
    limits: Limits | None = None,
    expires_at: str | None = None,
    created_by: str | None = None,
) -> IssuedKey:
    """Create a key (and its project's record when it has none). `secret` may be given (the
    local server's fixed key); else it is random."""
    repository = repository or KeyRepository()
    secret = secret or _new_secret()
    now = iso()
    ensure_project(org_id, project_id)
    record = ApiKeyRecord(
        key_id=new_id("key"),
        key_hash=hash_secret(secret),
        org_id=org_id,
        project_id=project_id,
        permissions=tuple(permissions),
        name=name,
        prefix=secret[:8],
        created_at=now,
        expires_at=expires_at,
        limits=_limits_dict(limits) or {},
    )
    listed = _listed(record, now, created_by=created_by)
    repository.put(record, listed)
    return IssuedKey(secret, record, listed)


def _listed(record: ApiKeyRecord, now: str, **extra: Any) -> ApiKeyStored:
    return ApiKeyStored(
        id=record.key_id,
        project_id=record.project_id,
        org_id=record.org_id,
        name=record.name,
        permissions=list(record.permissions),
        prefix=record.prefix,
        key_hash=record.key_hash,
        limits=record.limits or None,
        expires_at=record.expires_at,
        created_at=record.created_at,
        updated_at=now,
        **extra,
    )


def ensure_listed(record: ApiKeyRecord, repository: KeyRepository | None = None) -> None:
    """Give a key issued before keys were listed (its authorizer item only) its listed record."""
    (repository or KeyRepository()).put_listed(_listed(record, iso()))


def ensure_project(org_id: str, project_id: str, projects: ProjectRepository | None = None) -> None:
    """The project's record, created (named after its id) when a key names a project that has none."""
    projects = projects or ProjectRepository()
    if projects.get(org_id, project_id) is None:
        now = iso()
        # False when another request created it meanwhile: it exists either way
        projects.insert(ProjectStored(id=project_id, org_id=org_id, name=project_id, created_at=now, updated_at=now))


# --- authentication (the authorizer) -------------------------------------------------------

_touched: dict[str, float] = {}
_touched_lock = threading.Lock()


def authenticate(secret: str, repository: KeyRepository | None = None, deps: Deps | None = None) -> Principal | None:
    """The principal a key secret stands for, or None for an unknown, revoked or expired key."""
    if not secret:
        return None
    deps = deps or Deps(keys=repository or KeyRepository())
    record = deps.keys.get_by_hash(hash_secret(secret))
    now = deps.clock()
    stamp = iso(now)
    if record is None or not record.active or (record.expires_at is not None and record.expires_at <= stamp):
        return None
    project = deps.projects.get(record.org_id, record.project_id)
    project_limits = ProjectLimits(**project.limits) if project is not None and project.limits else None
    _note_use(record, now, deps)
    return Principal(
        record.org_id,
        record.project_id,
        record.key_id,
        record.permissions,
        expires_at=record.expires_at,
        key_limits=Limits(**record.limits) if record.limits else None,
        project_limits=project_limits,
    )


def _note_use(record: ApiKeyRecord, now: datetime, deps: Deps) -> None:
    """last_used_at, written at most once a minute per key and environment. A failed write is
    counted and left for the next authentication of the key to retry (the stamp stays old)."""
    mono = time.monotonic()
    with _touched_lock:
        if mono - _touched.get(record.key_id, -1e9) < LAST_USED_INTERVAL.total_seconds():
            return
        _touched[record.key_id] = mono
    try:
        deps.keys.touch(record.project_id, record.key_id, iso(now), iso(now - LAST_USED_INTERVAL))
    except (ClientError, BotoCoreError):
        with _touched_lock:
            _touched.pop(record.key_id, None)
        count("KeyLastUsedWriteFailed")


# --- projects ------------------------------------------------------------------------------


def _project(principal: Principal, project_id: str, deps: Deps) -> ProjectStored:
    record = deps.projects.get(principal.org_id, project_id) if project_id else None
    if record is None:
        raise NotFound(f"No project {project_id!r}.", code="project_not_found")
    return record


def create_project(principal: Principal, body: ProjectCreate, deps: Deps | None = None) -> Project:
    deps = _deps(deps)
    now = iso(deps.clock())
    record = ProjectStored(
        id=new_id("proj"),
        org_id=principal.org_id,
        name=body.name,
        limits=_limits_dict(body.limits),
        created_at=now,
        updated_at=now,
    )
    if not deps.projects.insert(record):  # a fresh ULID never collides; refuse rather than overwrite
        raise Conflict(f"A project {record.id!r} exists already.", code="project_exists")
    return record.view()


def get_project(principal: Principal, project_id: str, deps: Deps | None = None) -> Project:
    return _project(principal, project_id, _deps(deps)).view()


def list_projects(
    principal: Principal, limit: int, position: Position | None, deps: Deps | None = None
) -> tuple[list[Project], Position | None]:
    deps = _deps(deps)
    records, last = deps.projects.page(principal.org_id, limit, position["after"] if position else None)
    return [r.view() for r in records], ({"after": last} if last else None)


def update_project(principal: Principal, project_id: str, body: ProjectUpdate, deps: Deps | None = None) -> Project:
    deps = _deps(deps)
    record = _project(principal, project_id, deps)
    changes: dict[str, Any] = {"updated_at": iso(deps.clock()), "version": record.version + 1}
    if "name" in body.model_fields_set:
        if body.name is None:
            raise InvalidRequest("A project's name cannot be removed.", param="name")
        changes["name"] = body.name
    if "limits" in body.model_fields_set:
        changes["limits"] = _limits_dict(body.limits)
    updated = record.model_copy(update=changes)
    deps.projects.replace(updated, record.version)
    return updated.view()


# --- keys ----------------------------------------------------------------------------------


def _scope(principal: Principal, project_id: str | None, deps: Deps) -> str:
    """The project a key request addresses: the caller's own, or (for an org administrator) any
    project of its org. Another project is not found for anyone else."""
    if project_id is None or project_id == principal.project_id:
        return principal.project_id
    if not covers(principal.permissions, ORG_ADMIN):
        raise NotFound(f"No project {project_id!r}.", code="project_not_found")
    return _project(principal, project_id, deps).id


def _load_key(principal: Principal, key_id: str, project_id: str | None, deps: Deps) -> ApiKeyStored:
    scope = _scope(principal, project_id, deps)
    record = deps.keys.records.get(scope, key_id) if has_prefix(key_id, "key") else None
    if record is None or record.org_id != principal.org_id:
        raise NotFound(f"No API key {key_id!r}.", code="api_key_not_found")
    return record


def _check_grant(principal: Principal, body: ApiKeyCreate) -> tuple[list[str], str | None, Limits | None]:
    """What the new key gets, refused where it would exceed the creator."""
    permissions = body.permissions if body.permissions is not None else list(principal.permissions)
    for i, permission in enumerate(permissions):
        if not covers(principal.permissions, permission):
            raise InvalidRequest(
                f"This API key cannot grant {permission!r}: a key never grants more than the key that creates it.",
                code="permission_exceeds_creator",
                param=f"permissions[{i}]",
            )
    expires_at = body.expires_at or principal.expires_at
    if principal.expires_at is not None and expires_at is not None and expires_at > principal.expires_at:
        raise InvalidRequest(
            f"The new key would outlive this one (it expires at {principal.expires_at}).",
            code="expiry_exceeds_creator",
            param="expires_at",
        )
    return permissions, expires_at, _capped(principal, body.limits)


def _capped(principal: Principal, limits: Limits | None) -> Limits | None:
    """`limits`, refused where looser than the caller's own key limits; the caller's caps carry
    over to what `limits` leaves unset."""
    own = principal.key_limits
    if own is None:
        return limits
    merged = (limits or Limits()).model_dump()
    for name, cap in own.model_dump(exclude_none=True).items():
        if merged.get(name) is None:
            merged[name] = cap
        elif merged[name] > cap:
            raise InvalidRequest(
                f"limits.{name} may not exceed this key's own ({cap}).",
                code="limit_exceeds_creator",
                param=f"limits.{name}",
            )
    return Limits(**merged)


def create_key(
    principal: Principal, body: ApiKeyCreate, idempotency_key: str | None = None, deps: Deps | None = None
) -> ApiKeyWithSecret:
    """A new key. With an Idempotency-Key, a retry never makes a second key: the secret cannot be
    shown again (it is not stored), so the retry answers 409 naming the key to rotate."""
    deps = _deps(deps)
    project_id = _scope(principal, body.project_id, deps)
    permissions, expires_at, limits = _check_grant(principal, body)
    secret = _new_secret()
    now = iso(deps.clock())
    record = ApiKeyRecord(
        key_id=new_id("key"),
        key_hash=hash_secret(secret),
        org_id=principal.org_id,
        project_id=project_id,
        permissions=tuple(permissions),
        name=body.name,
        prefix=secret[:8],
        created_at=now,
        expires_at=expires_at,
        limits=_limits_dict(limits) or {},
    )
    marker = None
    if idempotency_key is not None:
        marker = once.marker(principal.project_id, idempotency_key)
    listed = _listed(record, now, created_by=principal.key_id, idempotency=marker)
    if marker is not None:
        earlier = deps.keys.by_idempotency(project_id, marker)
        if earlier is not None:
            raise _already_created(earlier, once.fingerprint(body))
    try:
        deps.keys.put(record, listed, marker=(marker, once.fingerprint(body)) if marker else None)
    except Conflict:
        earlier = deps.keys.by_idempotency(project_id, marker) if marker else None
        if earlier is None:
            raise
        raise _already_created(earlier, once.fingerprint(body)) from None  # a concurrent twin won
    return ApiKeyWithSecret(**listed.view().model_dump(), secret=secret)


def _already_created(earlier: tuple[str, str], fingerprint: str) -> Conflict:
    return once.already_created(
        earlier,
        fingerprint,
        what="API key",
        rotate="rotate the key (POST /v1/api-keys/{id}/rotate)",
        code="api_key_already_created",
    )


def list_keys(
    principal: Principal,
    limit: int,
    position: Position | None,
    project_id: str | None = None,
    deps: Deps | None = None,
) -> tuple[list[ApiKey], Position | None]:
    deps = _deps(deps)
    scope = _scope(principal, project_id, deps)
    records, last = deps.keys.records.page(scope, limit, position["after"] if position else None)
    return [r.view() for r in records], ({"after": last} if last else None)


def get_key(principal: Principal, key_id: str, project_id: str | None = None, deps: Deps | None = None) -> ApiKey:
    return _load_key(principal, key_id, project_id, _deps(deps)).view()


def update_key(
    principal: Principal, key_id: str, body: ApiKeyUpdate, project_id: str | None = None, deps: Deps | None = None
) -> ApiKey:
    deps = _deps(deps)
    record = _load_key(principal, key_id, project_id, deps)
    changes: dict[str, Any] = {"updated_at": iso(deps.clock()), "version": record.version + 1}
    if "name" in body.model_fields_set:
        if body.name is None:
            raise InvalidRequest("A key's name cannot be removed.", param="name")
        changes["name"] = body.name
    if "limits" in body.model_fields_set:
        changes["limits"] = _limits_dict(_capped(principal, body.limits))  # as at creation
    updated = record.model_copy(update=changes)
    auth = _auth_of(updated)
    deps.keys.replace(auth, updated, record.version)
    return updated.view()


def _auth_of(listed: ApiKeyStored, key_hash: str | None = None, prefix: str | None = None) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=listed.id,
        key_hash=key_hash or listed.key_hash,
        org_id=listed.org_id,
        project_id=listed.project_id,
        permissions=tuple(listed.permissions),
        name=listed.name,
        prefix=prefix or listed.prefix,
        created_at=listed.created_at,
        expires_at=listed.expires_at,
        limits=dict(listed.limits or {}),
    )


def rotate_key(
    principal: Principal, key_id: str, project_id: str | None = None, deps: Deps | None = None
) -> ApiKeyWithSecret:
    """A new secret for the key (same id, permissions, limits); the old secret stops working."""
    deps = _deps(deps)
    record = _load_key(principal, key_id, project_id, deps)
    secret = _new_secret()
    now = iso(deps.clock())
    updated = record.model_copy(
        update={
            "key_hash": hash_secret(secret),
            "prefix": secret[:8],
            "rotated_at": now,
            "updated_at": now,
            "version": record.version + 1,
        }
    )
    deps.keys.rotate(record.key_hash, _auth_of(updated), updated, record.version)
    return ApiKeyWithSecret(**updated.view().model_dump(), secret=secret)


def delete_key(principal: Principal, key_id: str, project_id: str | None = None, deps: Deps | None = None) -> None:
    deps = _deps(deps)
    deps.keys.revoke(_load_key(principal, key_id, project_id, deps))
