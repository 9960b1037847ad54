"""Schemathesis hooks for tests/local/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

Schemathesis draws `Idempotency-Key` values from a small space ("0", "a", ...), so nearly every
POST after the first reuses a key with another body and is answered 409 idempotency_key_reused,
which is right, and hides everything else the route does. Each valid key it sends is made unique,
so a POST reaches its handler; keys schemathesis makes invalid on purpose are sent as they are.

The API key schemathesis authenticates with is listed by GET /v1/api-keys, so the stateful phase
(and any case that draws its id) could revoke, rotate or rate-limit it, and every later case would
get 401 or 429 instead of reaching its handler. Changes to that one key (PARLEY_SCHEMATHESIS_KEY_ID)
go to an id that does not exist instead, and are answered 404; reading it is left alone.

Nothing on this machine answers for a model provider but the built-in echo model (no network, and
a generated api_key would not be accepted anyway), so in the stateful phase, where a created
provider is then used by a completion (directly, or through a chat), every provider schemathesis
creates is an echo provider: otherwise that completion is Parley's correct 502
`provider_unreachable`, which the not_a_server_error check counts as a failure. The other phases
send provider bodies as they are (their completions name providers that do not exist).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import schemathesis
from schemathesis.generation.meta import TestPhase

_SERIAL = itertools.count(1)
HEADER = "idempotency-key"
KEY_ID = "PARLEY_SCHEMATHESIS_KEY_ID"
OUTBOUND = ("openai", "anthropic", "bedrock")  # provider types whose calls leave the machine


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == HEADER and isinstance(value, str) and value and value.isprintable():
            suffix = f".{next(_SERIAL)}"
            headers[name] = value[: 255 - len(suffix)] + suffix
    body = case.body
    stateful = case.meta is not None and case.meta.phase.name == TestPhase.STATEFUL
    creates_provider = case.method.upper() == "POST" and case.path == "/v1/providers"
    if stateful and creates_provider and isinstance(body, dict) and body.get("type") in OUTBOUND:
        body["type"] = "echo"
    own = os.environ.get(KEY_ID)
    parameters = case.path_parameters or {}
    if own and case.method.upper() != "GET" and parameters.get("key_id") == own:
        parameters["key_id"] = "key_" + "0" * 24
