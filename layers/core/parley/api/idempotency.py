"""`Idempotency-Key` on POST requests, at the HTTP level: a retry gets the first response.

Sends (`POST .../messages`) do not use this store: there the key is written with the stored
pair (parley.services.messages), so a retry after any failure answers from what was stored.
Every other POST goes through here:

- The key is scoped to the caller's project and the route; the first request with it claims
  it, runs, and its response is stored for 24 hours: a buffered response as it is, a stream as
  the bytes it sent (up to MAX_STORED_BYTES), replayed identically.
- The same key with a different body is refused (409 `idempotency_key_reused`); while the first
  request still runs, a retry gets 409 `idempotency_request_in_progress` with Retry-After.
- 502, 503 and 504 (a provider failed or timed out, Parley's storage was throttled: nothing was
  stored) release the key, so the retry runs again; any other response is kept, a 500 included
  (it may have stored something), as Stripe does. A stream whose client went away releases the
  key too: only stateless completions stream through here, and they store nothing but usage.
- A buffered response over MAX_STORED_BYTES is not kept: its retry gets 409
  `idempotency_response_unavailable` rather than running twice.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from parley.api.streaming import StreamingResponse
from parley.domain.errors import REPLAYED_HEADER, Conflict, InvalidRequest
from parley.domain.principal import Principal
from parley.storage.idempotency import IdempotencyStore

log = logging.getLogger(__name__)
HEADER = "idempotency-key"
MAX_STORED_BYTES = 300_000  # DynamoDB items stop at 400 KB
REPLAY_HEADER = REPLAYED_HEADER
TRANSIENT = frozenset({502, 503, 504})  # statuses after which nothing was stored: the retry may run again
RETRY_AFTER = {"Retry-After": "2"}


def key_of(event: Mapping[str, Any]) -> str | None:
    if event.get("httpMethod") != "POST":
        return None
    for name, value in (event.get("headers") or {}).items():
        if name.lower() == HEADER:
            if not value or len(value) > 255 or not value.isprintable():
                raise InvalidRequest(
                    "Idempotency-Key must be 1 to 255 printable characters.",
                    code="invalid_idempotency_key",
                    param="Idempotency-Key",
                )
            return str(value)
    return None


def run(
    event: Mapping[str, Any],
    key: str,
    principal: Principal,
    invoke: Callable[[], dict[str, Any] | StreamingResponse],
    store: IdempotencyStore | None = None,
) -> dict[str, Any] | StreamingResponse:
    store = store or IdempotencyStore()
    route = f"{event.get('httpMethod')} {event.get('resource')}"
    record_id = hashlib.sha256(f"{principal.project_id}\n{route}\n{key}".encode()).hexdigest()
    body = event.get("body") or ""
    request_hash = hashlib.sha256(f"{event.get('path')}\n{body}".encode()).hexdigest()
    existing = store.claim(record_id, request_hash)
    if existing is not None:
        if existing.get("request_hash") not in (None, request_hash):
            raise Conflict("This Idempotency-Key was used with a different request.", code="idempotency_key_reused")
        if existing.get("status") != "completed":
            raise Conflict(
                "A request with this Idempotency-Key is still running; retry shortly.",
                code="idempotency_request_in_progress",
                headers=RETRY_AFTER,
            )
        return _replay(existing["response"])
    try:
        result = invoke()
    except BaseException:
        store.release(record_id)
        raise
    if isinstance(result, StreamingResponse):
        return StreamingResponse(
            result.status,
            result.headers,
            _recording(result, store, record_id, request_hash),
            result.cookies,
            result.after,  # a replay answers the recorded body and runs nothing again
        )
    if int(result.get("statusCode", 500)) in TRANSIENT:
        store.release(record_id)
    elif len(str(result.get("body") or "")) > MAX_STORED_BYTES:
        store.complete(record_id, request_hash, {"kind": "unavailable"})
    else:
        store.complete(record_id, request_hash, {"kind": "buffered", "result": result})
    return result


def _recording(
    response: StreamingResponse, store: IdempotencyStore, record_id: str, request_hash: str
) -> Iterator[bytes]:
    sent: list[bytes] = []
    size, whole = 0, False
    try:
        for chunk in response.body:
            size += len(chunk)
            if size <= MAX_STORED_BYTES:
                sent.append(chunk)
            yield chunk
        whole = True
    finally:
        close = getattr(response.body, "close", None)
        if close is not None:
            close()
        if whole and size <= MAX_STORED_BYTES and response.status < 500:
            store.complete(
                record_id,
                request_hash,
                {
                    "kind": "stream",
                    "status": response.status,
                    "headers": response.headers,
                    "body": base64.b64encode(b"".join(sent)).decode(),
                },
            )
        else:
            if whole:
                log.warning("stream too large to keep for idempotent replay", extra={"bytes": size})
            store.release(record_id)


def _replay(stored: dict[str, Any]) -> dict[str, Any] | StreamingResponse:
    if stored["kind"] == "unavailable":
        raise Conflict(
            "The first response to this Idempotency-Key was too large to keep; it is not run again.",
            code="idempotency_response_unavailable",
        )
    if stored["kind"] == "buffered":
        result: dict[str, Any] = dict(stored["result"])
        result["headers"] = {**(result.get("headers") or {}), REPLAY_HEADER: "true"}
        return result
    headers = {**stored["headers"], REPLAY_HEADER: "true"}
    return StreamingResponse(int(stored["status"]), headers, iter([base64.b64decode(stored["body"])]))
