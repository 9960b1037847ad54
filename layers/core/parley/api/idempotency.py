"""`Idempotency-Key` on POST requests: a retry gets the first response and nothing runs twice.

- The key is scoped to the caller's project and the route; the first request with it claims
  it, runs, and its response is stored for 24 hours: a buffered response as it is, a stream as
  the bytes it sent (up to MAX_STORED_BYTES), replayed identically.
- The same key with a different body is refused (409 `idempotency_key_reused`); while the first
  request still runs, a retry gets 409 `idempotency_request_in_progress`.
- A 5xx, or a stream whose client went away, releases the key: the retry runs again.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from parley.api.principal import Principal
from parley.api.streaming import StreamingResponse
from parley.domain.errors import Conflict, InvalidRequest
from parley.storage.idempotency import IdempotencyStore

log = logging.getLogger(__name__)
HEADER = "idempotency-key"
MAX_STORED_BYTES = 300_000  # DynamoDB items stop at 400 KB
REPLAY_HEADER = "Idempotent-Replayed"


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
            )
        return _replay(existing["response"])
    try:
        result = invoke()
    except BaseException:
        store.release(record_id)
        raise
    if isinstance(result, StreamingResponse):
        return StreamingResponse(
            result.status, result.headers, _recording(result, store, record_id, request_hash), result.cookies
        )
    if int(result.get("statusCode", 500)) >= 500:
        store.release(record_id)
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
    if stored["kind"] == "buffered":
        result: dict[str, Any] = dict(stored["result"])
        result["headers"] = {**(result.get("headers") or {}), REPLAY_HEADER: "true"}
        return result
    headers = {**stored["headers"], REPLAY_HEADER: "true"}
    return StreamingResponse(int(stored["status"]), headers, iter([base64.b64decode(stored["body"])]))
