"""Standard Webhooks signatures (symmetric, `v1`), the sender's side.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the key is the base64-decoded
part of a `whsec_` secret after the prefix; the signature is `v1,` + base64 of its HMAC-SHA256.
Several signatures (a rotation's grace: the new secret and the previous one) go space-separated
in one `webhook-signature` header, and a receiver accepts the request if any of them verifies.
tests/unit/test_webhook_signatures.py proves the bytes equal the `standardwebhooks` library's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

from parley.domain.webhooks import SECRET_BYTES, SECRET_PREFIX


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """One `v1,<base64>` signature."""
    if "." in message_id:  # the spec: neither the id nor the timestamp may contain a full stop
        raise ValueError("a webhook id may not contain '.'")
    content = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets_: Iterable[str], message_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with each secret (space-separated)."""
    signatures = " ".join(sign(s, message_id, timestamp, body) for s in secrets_)
    if not signatures:
        raise ValueError("at least one secret is needed")
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": signatures}
