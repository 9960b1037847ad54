"""Streaming responses: what a streaming handler returns, and the driving logic shared by the
Lambda runtime adapter and the local server, so both behave the same way:

- the first chunk is produced before anything is sent, so an error raised before the first
  byte becomes an ordinary JSON error response with its own status;
- a failure after the first byte becomes an SSE `error` event at the end of the stream
  (the Lambda adapter adds the runtime's error trailers after it);
- `after` (a background response's generation) runs once the response is complete and sent, in
  the same invocation: on Lambda before the runtime asks for the next invocation (the execution
  environment is not frozen until then; the function's timeout bounds it), locally before the
  environment takes another request. `run_after` is what both drivers call.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from parley.api import sse
from parley.api.errors import as_parley_error, body_for, error_response
from parley.api.observability import log_internal_error
from parley.domain.errors import ParleyError
from parley.iterators import resume

log = logging.getLogger(__name__)


class StreamDeadlineExceeded(ParleyError):
    """The function's time limit was about to cut the stream: the runtime adapter ends it first,
    with this error, so the client learns why and the reply is kept as `incomplete`."""

    status = 504
    type = "api_error"
    code = "stream_deadline"

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message
            or "The reply reached the time limit of a streamed response and was cut short; "
            "what was produced is kept with status incomplete."
        )


@dataclass
class StreamingResponse:
    status: int
    headers: dict[str, str]
    body: Iterator[bytes]
    cookies: list[str] = field(default_factory=list)
    after: Callable[[], None] | None = None  # run once the response is sent (see the module's docstring)


def run_after(response: StreamingResponse, request_id: str | None) -> None:
    """Run the response's `after` task, if any; a failure is logged (the response was sent)."""
    if response.after is None:
        return
    try:
        response.after()
    except Exception as exc:  # noqa: BLE001 - nobody is left to answer: logged with its request id
        log_internal_error(exc, request_id, "the work after the response failed")


def from_proxy_result(result: dict[str, Any] | StreamingResponse) -> StreamingResponse:
    """Normalise a handler's result (an API Gateway proxy dict or a stream) to a stream."""
    if isinstance(result, StreamingResponse):
        return result
    headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
    cookies: list[str] = []
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if name.lower() == "set-cookie":
            cookies.extend(values)
        elif values:
            headers[name] = ", ".join(str(v) for v in values)
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
    return StreamingResponse(int(result.get("statusCode", 200)), headers, iter([body] if body else []), cookies)


def error_stream(
    error: Exception, request_id: str | None, after: Callable[[], None] | None = None
) -> StreamingResponse:
    """The JSON error response for an error raised before the first byte."""
    parley_error = as_parley_error(error)
    if parley_error.status == 500:
        log_internal_error(error, request_id, "internal error before the first byte")
    status, headers, body = error_response(parley_error, request_id)
    return StreamingResponse(status, headers, iter([body]), after=after)


def prime(response: StreamingResponse, request_id: str | None) -> StreamingResponse:
    """Produce the first chunk now: an error here still gets a proper status code."""
    try:
        first = next(response.body)
    except StopIteration:
        return StreamingResponse(response.status, response.headers, iter(()), response.cookies, response.after)
    except Exception as exc:  # noqa: BLE001 - becomes the error response
        return error_stream(exc, request_id, response.after)
    return StreamingResponse(
        response.status, response.headers, resume(first, response.body), response.cookies, response.after
    )


def error_event(error: Exception, request_id: str | None) -> bytes:
    """The SSE event that ends a stream which failed after its first byte."""
    parley_error = as_parley_error(error)
    if parley_error.status == 500:
        log_internal_error(error, request_id, "internal error: the stream failed mid-way")
    else:
        log.warning("stream ended with an error: %s (%s)", parley_error.code, parley_error.status)
    return sse.event("error", {"type": "error", **body_for(parley_error, request_id)})
