"""Resources whose secret is shown once (API keys, webhooks) and an Idempotency-Key: a retry of
a create never makes a second resource, and cannot show the secret again (it is not kept), so it
answers 409 naming the resource to rotate. The key is a marker stored with the resource: its
hash and the request's fingerprint (the same key with another body is a different request)."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel

from parley.domain.errors import Conflict


def marker(project_id: str, idempotency_key: str) -> str:
    return hashlib.sha256(f"{project_id}\n{idempotency_key}".encode()).hexdigest()


def fingerprint(body: BaseModel) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()


def already_created(earlier: tuple[str, str], fingerprint: str, *, what: str, rotate: str, code: str) -> Conflict:
    """The answer to a retry: `earlier` is (resource id, the fingerprint stored with it);
    `rotate` says how to get a new secret ("rotate the key (POST /v1/api-keys/{id}/rotate)")."""
    resource_id, stored = earlier
    if stored != fingerprint:
        return Conflict("This Idempotency-Key was used with a different request body.", code="idempotency_key_reused")
    return Conflict(
        f"This Idempotency-Key already created {what} {resource_id}. Its secret is shown only once: "
        f"{rotate.format(id=resource_id)} for a new secret.",
        code=code,
    )
