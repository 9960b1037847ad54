"""Opaque, signed pagination cursors.

A cursor is base64url of an HMAC-SHA256 tag (16 bytes) and a small JSON document naming what
it pages (`kind`, so a cursor from one list is refused by another) and where the next page
starts. The tag is keyed per deployment, so a client cannot forge a position: a truncated,
edited or invented cursor is a 400 `invalid_cursor`, never a wrong page or a 500. After the
tag checks out, the position must still have exactly the shape the caller expects (field ->
type), so even a validly signed position of the wrong shape is refused the same way. Every
query behind a cursor is also scoped to the caller's project.

The key: locally (stage `local`) a fixed one, so cursors survive restarts of `make serve`;
in AWS the secret named by `PARLEY_CURSOR_SECRET` (a generated value CDK creates in the
data stack), read from Secrets Manager once per process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
from collections.abc import Mapping
from typing import Any

from parley.aws import clients
from parley.domain.errors import InvalidRequest, ParleyError
from parley.domain.paging import Pages, Position, Shape
from parley.settings import get_settings

_VERSION = 2
_TAG_BYTES = 16
_LOCAL_KEY = b"parley-local-cursor-key: not a secret, used only when PARLEY_STAGE=local"
_MALFORMED = "The cursor is malformed; pass next_cursor exactly as returned."

_keys: dict[str, bytes] = {}
_lock = threading.Lock()


def encode_cursor(kind: str, position: Mapping[str, Any]) -> str:
    payload = json.dumps({"v": _VERSION, "k": kind, "p": dict(position)}, separators=(",", ":"), sort_keys=True)
    data = payload.encode()
    return base64.urlsafe_b64encode(_tag(data) + data).rstrip(b"=").decode()


def decode_cursor(cursor: str, kind: str, shape: Shape) -> dict[str, Any]:
    """The position a cursor holds, if it is one of ours, for this list, of this shape; else a 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4))
    except (ValueError, binascii.Error) as exc:  # not base64url (or not ASCII)
        raise _malformed() from exc
    tag, data = raw[:_TAG_BYTES], raw[_TAG_BYTES:]
    if not data or not hmac.compare_digest(tag, _tag(data)):
        raise _malformed()
    try:
        document = json.loads(data)
    except ValueError as exc:  # signed by us, so only a bug gets here; still the client's 400
        raise _malformed() from exc
    if not isinstance(document, dict) or document.get("v") != _VERSION or not isinstance(document.get("p"), dict):
        raise _malformed()
    if document.get("k") != kind:
        raise InvalidRequest("This cursor belongs to another list.", code="invalid_cursor", param="cursor")
    position: dict[str, Any] = document["p"]
    if set(position) != set(shape) or not all(_is(position[name], want) for name, want in shape.items()):
        raise _malformed()
    return position


def position(cursor: str | None, pages: Pages) -> Position | None:
    """The position a request's cursor holds for this list (None without a cursor)."""
    return decode_cursor(cursor, pages.kind, pages.shape) if cursor is not None else None


def cursor_for(pages: Pages, after: Position | None) -> str | None:
    """The next_cursor of a page whose list goes on after `after` (None at the end)."""
    return encode_cursor(pages.kind, after) if after is not None else None


def _is(value: object, want: type | tuple[type, ...]) -> bool:
    wanted = want if isinstance(want, tuple) else (want,)
    if isinstance(value, bool) and bool not in wanted:  # JSON true is not an int position
        return False
    return isinstance(value, wanted)


def _malformed() -> InvalidRequest:
    return InvalidRequest(_MALFORMED, code="invalid_cursor", param="cursor")


def _tag(data: bytes) -> bytes:
    return hmac.new(signing_key(), data, hashlib.sha256).digest()[:_TAG_BYTES]


def signing_key() -> bytes:
    """This deployment's cursor key: fixed locally, else the Secrets Manager secret (cached)."""
    settings = get_settings()
    if settings.local:
        return _LOCAL_KEY
    secret_id = settings.cursor_secret
    if not secret_id:
        raise ParleyError("PARLEY_CURSOR_SECRET is not set: cursors cannot be signed.")
    key = _keys.get(secret_id)
    if key is None:
        with _lock:
            key = _keys.get(secret_id)
            if key is None:
                value = clients().secretsmanager.get_secret_value(SecretId=secret_id)["SecretString"]
                if len(value) < 32:
                    raise ParleyError("The cursor secret is shorter than 32 characters.")
                key = _keys[secret_id] = value.encode()
    return key


def forget_keys() -> None:
    """Drop the cached keys (tests; a rotated secret is picked up by new execution environments)."""
    with _lock:
        _keys.clear()
