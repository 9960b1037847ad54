"""Public ids: `<prefix>_<ULID>`, sortable by creation time, monotonic within a process."""

from __future__ import annotations

import hashlib
import os
import threading
import time

PREFIXES = frozenset(
    {
        "conv",
        "msg",
        "thr",
        "hof",
        "ses",
        "cht",
        "aip",
        "doc",
        "idx",
        "agt",
        "whk",
        "dlv",
        "key",
        "proj",
        "evt",
        "req",
        "chatcmpl",
        "resp",
    }
)
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


def ulid() -> str:
    """A 26-character ULID: 48-bit millisecond time then 80 random bits, incremented within a millisecond."""
    global _last_ms, _last_rand
    with _lock:
        now = time.time_ns() // 1_000_000
        if now <= _last_ms:
            now = _last_ms
            _last_rand = (_last_rand + 1) & ((1 << 80) - 1)
        else:
            _last_rand = int.from_bytes(os.urandom(10), "big")
        _last_ms = now
        value = (now << 80) | _last_rand
    return _encode(value)


def _encode(value: int) -> str:
    out = []
    for _ in range(26):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def derived_id(prefix: str, at_ms: int, key: str) -> str:
    """An id with a ULID's shape whose time part is `at_ms` and whose random part is a hash of
    `key`: the same change always gets the same id (an event redelivered from its stream record)."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:10], "big")
    return f"{prefix}_{_encode(((at_ms & ((1 << 48) - 1)) << 80) | digest)}"


def new_id(prefix: str) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    sep = "-" if prefix == "chatcmpl" else "_"
    return f"{prefix}{sep}{ulid()}"


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(prefix + "_") and len(value) == len(prefix) + 27
