"""Schemathesis hooks for tests/local/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

Schemathesis draws `Idempotency-Key` values from a small space ("0", "a", ...), so nearly every
POST after the first reuses a key with another body and is answered 409 idempotency_key_reused,
which is right, and hides everything else the route does. Each valid key it sends is made unique,
so a POST reaches its handler; keys schemathesis makes invalid on purpose are sent as they are.

The API key schemathesis authenticates with is listed by GET /v1/api-keys, so the stateful phase
(and any case that draws its id) could revoke, rotate or rate-limit it, and every later case would
get 401 or 429 instead of reaching its handler. Changes to that one key (PARLEY_SCHEMATHESIS_KEY_ID)
go to an id that does not exist instead, and are answered 404; reading it is left alone.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import schemathesis

_SERIAL = itertools.count(1)
HEADER = "idempotency-key"
KEY_ID = "PARLEY_SCHEMATHESIS_KEY_ID"


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == HEADER and isinstance(value, str) and value and value.isprintable():
            suffix = f".{next(_SERIAL)}"
            headers[name] = value[: 255 - len(suffix)] + suffix
    own = os.environ.get(KEY_ID)
    parameters = case.path_parameters or {}
    if own and case.method.upper() != "GET" and parameters.get("key_id") == own:
        parameters["key_id"] = "key_" + "0" * 24
