"""Issuing and checking API keys."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from parley.domain.clock import iso
from parley.domain.ids import new_id
from parley.domain.principal import Principal
from parley.storage.keys import ApiKeyRecord, KeyRepository, hash_secret

SECRET_PREFIX = "prl_"  # noqa: S105 - a visible prefix, not a secret


@dataclass(frozen=True)
class IssuedKey:
    secret: str  # shown once, never stored
    record: ApiKeyRecord


def issue_key(
    org_id: str,
    project_id: str,
    permissions: tuple[str, ...] = ("*",),
    *,
    name: str = "",
    secret: str | None = None,
    repository: KeyRepository | None = None,
) -> IssuedKey:
    """Create a key. `secret` may be given (the local server's fixed key); else it is random."""
    secret = secret or SECRET_PREFIX + secrets.token_urlsafe(32)
    record = ApiKeyRecord(
        key_id=new_id("key"),
        key_hash=hash_secret(secret),
        org_id=org_id,
        project_id=project_id,
        permissions=tuple(permissions),
        name=name,
        prefix=secret[:8],
        created_at=iso(),
    )
    (repository or KeyRepository()).put(record)
    return IssuedKey(secret, record)


def authenticate(secret: str, repository: KeyRepository | None = None) -> Principal | None:
    """The principal a key secret stands for, or None for an unknown or revoked key."""
    if not secret:
        return None
    record = (repository or KeyRepository()).get_by_hash(hash_secret(secret))
    if record is None or not record.active:
        return None
    return Principal(record.org_id, record.project_id, record.key_id, record.permissions)
