"""Opaque pagination cursors.

A cursor is base64url of a small JSON document naming what it pages (`kind`, so a cursor from
one list is refused by another) and where the next page starts, with a checksum so a truncated
or edited cursor is a clear 400 rather than a wrong page. Every query behind a cursor is
scoped to the caller's project, so a forged position can never reach another tenant's data.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from parley.domain.errors import InvalidRequest

_VERSION = 1


def encode_cursor(kind: str, position: dict[str, Any]) -> str:
    payload = json.dumps({"v": _VERSION, "k": kind, "p": position}, separators=(",", ":"), sort_keys=True).encode()
    checksum = zlib.crc32(payload).to_bytes(4, "big")
    return base64.urlsafe_b64encode(checksum + payload).rstrip(b"=").decode()


def decode_cursor(cursor: str, kind: str) -> dict[str, Any]:
    """The position a cursor holds, or a 400 naming `cursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        checksum, payload = raw[:4], raw[4:]
        if len(raw) <= 4 or zlib.crc32(payload).to_bytes(4, "big") != checksum:
            raise ValueError("checksum")
        document = json.loads(payload)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            "The cursor is malformed; pass next_cursor exactly as returned.", code="invalid_cursor", param="cursor"
        ) from exc
    if not isinstance(document, dict) or document.get("v") != _VERSION or not isinstance(document.get("p"), dict):
        raise InvalidRequest(
            "The cursor is malformed; pass next_cursor exactly as returned.", code="invalid_cursor", param="cursor"
        )
    if document.get("k") != kind:
        raise InvalidRequest("This cursor belongs to another list.", code="invalid_cursor", param="cursor")
    position: dict[str, Any] = document["p"]
    return position
