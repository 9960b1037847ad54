"""Schemathesis hooks for tests/local/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

Schemathesis draws `Idempotency-Key` values from a small space ("0", "a", ...), so nearly every
POST after the first reuses a key with another body and is answered 409 idempotency_key_reused,
which is right, and hides everything else the route does. Each valid key it sends is made unique,
so a POST reaches its handler; keys schemathesis makes invalid on purpose are sent as they are.
"""

from __future__ import annotations

import itertools
from typing import Any

import schemathesis

_SERIAL = itertools.count(1)
HEADER = "idempotency-key"


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == HEADER and isinstance(value, str) and value and value.isprintable():
            suffix = f".{next(_SERIAL)}"
            headers[name] = value[: 255 - len(suffix)] + suffix
