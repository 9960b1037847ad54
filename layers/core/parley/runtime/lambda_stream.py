"""A Lambda runtime loop that streams responses (DESIGN.md section 5).

The managed Python runtime cannot stream, so streaming functions run on python3.13 with
``AWS_LAMBDA_EXEC_WRAPPER=/opt/parley-stream``: the wrapper starts this module instead of the
managed runtime's bootstrap, and this module speaks the Runtime API itself:

    GET  /2018-06-01/runtime/invocation/next
    POST /2018-06-01/runtime/invocation/{id}/response   streaming mode, chunked
    POST /2018-06-01/runtime/invocation/{id}/error      the handler raised
    POST /2018-06-01/runtime/init/error                 the handler could not be loaded

A response body is a JSON prelude ``{"statusCode", "headers", "cookies"}``, eight NUL bytes,
then the handler's chunks, each sent as its own HTTP chunk as soon as it is produced. An
error before the first byte is an ordinary JSON error response (``prime``); a failure after
it ends the stream with an SSE ``error`` event and the ``Lambda-Runtime-Function-Error-Type``
and ``-Body`` trailers, as the Node runtime client does.

The edges of a Lambda stream (``StreamTiming``):

- the body is pulled on a worker thread (``BodyPuller``), one chunk at a time and only when
  the previous one was sent, so the sender can wait with a timeout: after 15 s without a
  chunk it writes a ``: ping`` comment (API Gateway drops a stream idle for 5 minutes);
- 5 s before the invocation's ``Lambda-Runtime-Deadline-Ms`` it ends the stream with an SSE
  ``error`` event (code ``stream_deadline``) and closes the body, whose ``finally`` stores the
  partial reply as ``incomplete``, instead of being cut off silently at the time limit;
- the worker cannot outlive its invocation: a body that does not finish by the deadline once
  closed stops the runtime (``BodyStuck``), and Lambda starts a fresh execution environment;
- after a streamed response the Runtime API connection is closed, as AWS's custom-runtime
  guide says ("send the response in chunks, then close the connection"); the next ``/next``
  opens a new one.

Both intervals come from ``PARLEY_STREAM_PING_INTERVAL_MS`` and
``PARLEY_STREAM_DEADLINE_MARGIN_MS`` (read once, at start-up).

Event bodies are never logged.
"""

from __future__ import annotations

import base64
import contextvars
import http.client
import importlib
import json
import logging
import math
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote

from parley.api import sse
from parley.api.streaming import (
    StreamDeadlineExceeded,
    StreamingResponse,
    error_event,
    from_proxy_result,
    prime,
    run_after,
)

log = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Any]

API = "/2018-06-01/runtime"
NEXT_PATH = f"{API}/invocation/next"
INIT_ERROR_PATH = f"{API}/init/error"
DELIMITER = b"\x00" * 8
ERROR_TYPE = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY = "Lambda-Runtime-Function-Error-Body"
STREAM_HEADERS: tuple[tuple[str, str], ...] = (
    ("Lambda-Runtime-Function-Response-Mode", "streaming"),
    ("Transfer-Encoding", "chunked"),
    ("Content-Type", "application/vnd.awslambda.http-integration-response"),
    ("Trailer", f"{ERROR_TYPE}, {ERROR_BODY}"),
)
TRACE_ENV = "_X_AMZN_TRACE_ID"
_LOG_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
}


class RuntimeAPIError(Exception):
    """The Runtime API answered something the loop cannot go on from."""


class InitError(Exception):
    """The runtime cannot start (the handler does not load, a setting is invalid); reported to
    /init/error with `error_type` as Lambda-Runtime-Function-Error-Type."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class BodyStuck(RuntimeError):
    """A response body did not finish once closed, before its invocation's deadline: its worker
    thread would run on into the next invocation, so the runtime stops instead."""


PING_INTERVAL_ENV = "PARLEY_STREAM_PING_INTERVAL_MS"
DEADLINE_MARGIN_ENV = "PARLEY_STREAM_DEADLINE_MARGIN_MS"


@dataclass(frozen=True)
class StreamTiming:
    """When the adapter writes on its own: a `: ping` after `ping_interval_s` without a chunk,
    and the `stream_deadline` error `deadline_margin_s` before the invocation's deadline."""

    ping_interval_s: float = 15.0
    deadline_margin_s: float = 5.0

    def __post_init__(self) -> None:
        if not (self.ping_interval_s > 0 and self.deadline_margin_s > 0):
            raise ValueError(f"stream timing must be positive: {self}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> StreamTiming:
        defaults = cls()
        return cls(
            ping_interval_s=_milliseconds(environ, PING_INTERVAL_ENV, defaults.ping_interval_s),
            deadline_margin_s=_milliseconds(environ, DEADLINE_MARGIN_ENV, defaults.deadline_margin_s),
        )


def _milliseconds(environ: Mapping[str, str], name: str, default_s: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default_s
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise InitError(
            "Runtime.InvalidConfiguration", f"{name} must be a positive number of milliseconds, not {raw!r}"
        )
    return value / 1000


@dataclass(frozen=True)
class Invocation:
    request_id: str
    deadline_ms: int
    function_arn: str
    trace_id: str | None
    client_context: str | None
    cognito_identity: str | None
    payload: bytes


@dataclass(frozen=True)
class CognitoIdentity:
    cognito_identity_id: str | None = None
    cognito_identity_pool_id: str | None = None


@dataclass(frozen=True)
class ClientContext:
    client: Any = None
    custom: Any = None
    env: Any = None


class LambdaContext:
    """The handler's `context`, with the managed Python runtime's attribute names and types
    (`memory_limit_in_mb` is a string there too)."""

    def __init__(self, invocation: Invocation, environ: Mapping[str, str]) -> None:
        self.aws_request_id = invocation.request_id
        self.invoked_function_arn = invocation.function_arn
        self.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = environ.get("AWS_LAMBDA_FUNCTION_VERSION", "")
        self.memory_limit_in_mb = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self.log_group_name = environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.client_context = _client_context(invocation.client_context)
        self.identity = _cognito_identity(invocation.cognito_identity)
        self._deadline_ms = invocation.deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def __repr__(self) -> str:
        return f"LambdaContext(aws_request_id={self.aws_request_id!r}, function_name={self.function_name!r})"


def _json_object(raw: str | None, what: str) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        log.warning("ignoring a malformed %s header", what)
        return None
    return value if isinstance(value, dict) else None


def _client_context(raw: str | None) -> ClientContext | None:
    value = _json_object(raw, "client context")
    if value is None:
        return None
    return ClientContext(value.get("client"), value.get("custom"), value.get("env"))


def _cognito_identity(raw: str | None) -> CognitoIdentity:
    value = _json_object(raw, "cognito identity") or {}
    return CognitoIdentity(value.get("cognitoIdentityId"), value.get("cognitoIdentityPoolId"))


def _error_payload(exc: BaseException, error_type: str | None = None, *, stack: bool = True) -> dict[str, Any]:
    trace = traceback.format_list(traceback.extract_tb(exc.__traceback__)) if stack else []
    return {"errorMessage": str(exc), "errorType": error_type or type(exc).__name__, "stackTrace": trace}


class RuntimeClient:
    """One kept-alive HTTP/1.1 connection to the Runtime API, reopened when it breaks."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            # No timeout: /next blocks until the next invocation, however long that takes.
            self._conn = http.client.HTTPConnection(self.address, timeout=None)
        return self._conn

    def reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _exchange(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = self._connection()
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            answer = conn.getresponse()
            payload = answer.read()
        except (OSError, http.client.HTTPException):
            self.reset()
            raise
        if answer.will_close:
            self.reset()
        return answer.status, answer.headers, payload

    def next_invocation(self) -> Invocation:
        try:
            status, headers, payload = self._exchange("GET", NEXT_PATH)
        except (OSError, http.client.HTTPException):
            # A kept-alive connection the other side dropped: one more try on a new one.
            log.warning("lost the Runtime API connection; reconnecting", exc_info=True)
            status, headers, payload = self._exchange("GET", NEXT_PATH)
        if status != 200:
            raise RuntimeAPIError(f"GET {NEXT_PATH} answered {status}")
        request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        if not request_id:
            raise RuntimeAPIError(f"GET {NEXT_PATH} gave no Lambda-Runtime-Aws-Request-Id")
        try:
            deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        except ValueError:
            deadline_ms = 0
        return Invocation(
            request_id=request_id,
            deadline_ms=deadline_ms,
            function_arn=headers.get("Lambda-Runtime-Invoked-Function-Arn") or "",
            trace_id=headers.get("Lambda-Runtime-Trace-Id") or None,
            client_context=headers.get("Lambda-Runtime-Client-Context") or None,
            cognito_identity=headers.get("Lambda-Runtime-Cognito-Identity") or None,
            payload=payload,
        )

    def post_error(self, path: str, error_type: str, payload: Mapping[str, Any]) -> None:
        headers = {ERROR_TYPE: error_type, "Content-Type": "application/json"}
        status, _, _ = self._exchange("POST", path, json.dumps(payload).encode(), headers)
        if status != 202:
            log.warning("POST %s answered %s", path, status)

    def post_invocation_error(self, invocation_id: str, exc: Exception) -> None:
        payload = _error_payload(exc)
        self.post_error(f"{API}/invocation/{quote(invocation_id, safe='')}/error", payload["errorType"], payload)

    def stream_response(
        self,
        invocation_id: str,
        head: bytes,
        body: Iterator[bytes],
        request_id: str | None,
        deadline: Deadline,
        timing: StreamTiming,
        *,
        pings: bool = True,
    ) -> None:
        """POST a response in streaming mode: `head` (the `prelude`), the delimiter, then each
        chunk of `body` written as soon as it is produced, `: ping` comments while it is idle
        (with `pings`: only an SSE body can carry them), and a `stream_deadline` error event if
        the deadline comes first. `body` is closed in
        the end (on its worker thread), so the handler's generator runs its `finally` even when
        sending fails half-way, and the connection is closed.
        """
        puller = BodyPuller(body)
        try:
            conn = self._connection()
            conn.putrequest(
                "POST", f"{API}/invocation/{quote(invocation_id, safe='')}/response", skip_accept_encoding=True
            )
            for name, value in STREAM_HEADERS:
                conn.putheader(name, value)
            conn.endheaders()
            _send_chunk(conn, head + DELIMITER)
            ping_interval = timing.ping_interval_s if pings else math.inf
            failure = _pump(conn, puller, deadline.stream_ends, ping_interval)
            if failure is None:
                conn.send(b"0\r\n\r\n")
            else:
                _send_chunk(conn, error_event(failure, request_id))
                conn.send(b"0\r\n" + _trailers(failure) + b"\r\n")
            answer = conn.getresponse()
            answer.read()
            if answer.status != 202:
                log.warning("the Runtime API answered %s to the response of %s", answer.status, invocation_id)
        finally:
            # AWS's custom-runtime guide: "send the response in chunks, then close the connection".
            # After a failure the request on this connection is unfinished anyway.
            self.reset()
            puller.close(deadline.seconds_left(fallback=timing.deadline_margin_s))


@dataclass(frozen=True)
class Deadline:
    """An invocation's deadline on the monotonic clock: `stream_ends` (the margin before it),
    when a stream is ended with `stream_deadline`, and `ends`, when Lambda stops the function.
    Both are infinite when the Runtime API gave no deadline."""

    stream_ends: float
    ends: float

    @classmethod
    def of(cls, deadline_ms: int, margin_s: float) -> Deadline:
        if deadline_ms <= 0:
            return cls(math.inf, math.inf)
        ends = time.monotonic() + deadline_ms / 1000 - time.time()
        return cls(ends - margin_s, ends)

    def seconds_left(self, *, fallback: float) -> float:
        """What is left until the end, or `fallback` without a deadline."""
        if math.isinf(self.ends):
            return fallback
        return max(self.ends - time.monotonic(), 0.0)


@dataclass(frozen=True)
class _Chunk:
    data: object


@dataclass(frozen=True)
class _End:
    pass


@dataclass(frozen=True)
class _Failed:
    error: Exception


_Pulled = _Chunk | _End | _Failed


class BodyPuller:
    """Pulls a response body on a worker thread: a blocked `next()` cannot be interrupted, but a
    wait for its result can, so the sender can ping and watch the deadline meanwhile.

    The body advances only when asked (`next`), one chunk at a time, so it never runs ahead of
    what was sent (backpressure) and its chunks keep their order. The worker alone calls the
    body's `next()` and `close()`: a close asked for while `next()` runs happens right after it
    returns. The worker runs in a copy of the caller's context (context variables carry over).
    """

    def __init__(self, body: Iterator[bytes]) -> None:
        self._body = body
        self._commands: queue.SimpleQueue[bool] = queue.SimpleQueue()  # True: next chunk, False: close
        self._results: queue.SimpleQueue[_Pulled] = queue.SimpleQueue()
        self._asked = False
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._work,), name="parley-stream-body", daemon=True)
        self._thread.start()

    def next(self, timeout: float) -> _Pulled | None:
        """The next chunk, the end or the body's failure; None if nothing came within `timeout`
        seconds (the chunk asked for is still coming: the next call waits for it)."""
        if not self._asked:
            self._commands.put(True)
            self._asked = True
        try:
            pulled = self._results.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        self._asked = False
        return pulled

    def close(self, timeout: float) -> None:
        """Close the body and wait up to `timeout` seconds for the worker; `BodyStuck` if it is
        still running then."""
        self._commands.put(False)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise BodyStuck(f"the response body was still running {timeout:.1f} s after it was closed")

    def _work(self) -> None:
        try:
            while self._commands.get():
                try:
                    chunk = next(self._body)
                except StopIteration:
                    self._results.put(_End())
                    return
                except Exception as exc:  # noqa: BLE001 - the sender ends the stream with it
                    self._results.put(_Failed(exc))
                    return
                self._results.put(_Chunk(chunk))
        finally:
            _close(self._body)


def prelude(response: StreamingResponse) -> bytes:
    """The application/vnd.awslambda.http-integration-response prelude (before the delimiter)."""
    return json.dumps(
        {"statusCode": int(response.status), "headers": response.headers, "cookies": response.cookies}
    ).encode()


def _send_chunk(conn: http.client.HTTPConnection, data: bytes) -> None:
    """One HTTP chunk, one sendall: nothing waits in a buffer."""
    if data:
        conn.send(b"%x\r\n" % len(data) + data + b"\r\n")


def _pump(
    conn: http.client.HTTPConnection, body: BodyPuller, stream_ends: float, ping_interval: float
) -> Exception | None:
    """Send the body's chunks as they come, a ping after `ping_interval` seconds without one, and
    stop at `stream_ends` (monotonic). The body's own failure, or the deadline, is returned."""
    last_sent = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= stream_ends:
            return StreamDeadlineExceeded()
        pulled = body.next(timeout=min(last_sent + ping_interval, stream_ends) - now)
        if pulled is None:
            if time.monotonic() < stream_ends:
                _send_chunk(conn, sse.ping())
                last_sent = time.monotonic()
            continue
        if isinstance(pulled, _End):
            return None
        if isinstance(pulled, _Failed):
            return pulled.error
        chunk = pulled.data
        if not isinstance(chunk, bytes | bytearray | memoryview):
            return TypeError(f"the response body yielded {type(chunk).__name__}, not bytes")
        _send_chunk(conn, bytes(chunk))
        last_sent = time.monotonic()


def _trailers(exc: Exception) -> bytes:
    error_type = type(exc).__name__
    body = base64.b64encode(json.dumps(_error_payload(exc, error_type, stack=False)).encode()).decode()
    return f"{ERROR_TYPE}: {error_type}\r\n{ERROR_BODY}: {body}\r\n".encode()


def _close(iterator: object) -> None:
    close = getattr(iterator, "close", None)
    if callable(close):
        try:
            close()
        except Exception:
            log.exception("closing the response body failed")


def _api_request_id(event: Any) -> str | None:
    context = event.get("requestContext") if isinstance(event, dict) else None
    request_id = context.get("requestId") if isinstance(context, dict) else None
    return str(request_id) if request_id else None


def _set_trace_id(trace_id: str | None) -> None:
    if trace_id:
        os.environ[TRACE_ENV] = trace_id
    else:
        os.environ.pop(TRACE_ENV, None)


def _invoke(client: RuntimeClient, handler: Handler, invocation: Invocation, timing: StreamTiming) -> None:
    _set_trace_id(invocation.trace_id)
    deadline = Deadline.of(invocation.deadline_ms, timing.deadline_margin_s)
    primed: StreamingResponse | None = None
    try:
        event = json.loads(invocation.payload)
        context = LambdaContext(invocation, os.environ)
        response = from_proxy_result(handler(event, context))
        request_id = _api_request_id(event)
        primed = prime(response, request_id)  # the first chunk, or the error response
        head = prelude(primed)  # before anything is sent: a bad header fails the invocation
    except Exception as exc:
        log.exception("the handler failed (invocation %s)", invocation.request_id)
        if primed is not None:
            _close(primed.body)
        client.post_invocation_error(invocation.request_id, exc)
        return
    try:
        client.stream_response(
            invocation.request_id, head, primed.body, request_id, deadline, timing, pings=_is_event_stream(primed)
        )
    finally:
        # the response is sent (or its connection lost: what it started is stored either way): work
        # the handler left for after it (a background response) runs now, before the next /next
        # (Lambda freezes the environment only then)
        run_after(primed, request_id)


def _is_event_stream(response: StreamingResponse) -> bool:
    content_type = next((v for k, v in response.headers.items() if k.lower() == "content-type"), "")
    return content_type.split(";")[0].strip().lower() == "text/event-stream"


def run(
    runtime_api: str,
    handler: Handler,
    *,
    max_invocations: int | None = None,
    timing: StreamTiming | None = None,
) -> None:
    """Serve invocations from the Runtime API at `runtime_api` (host:port) with `handler`,
    forever or for `max_invocations`. `BodyStuck` ends the loop (see the module's docstring)."""
    timing = timing or StreamTiming()
    client = RuntimeClient(runtime_api)
    served = 0
    try:
        while max_invocations is None or served < max_invocations:
            invocation = client.next_invocation()
            served += 1
            try:
                _invoke(client, handler, invocation, timing)
            except BodyStuck:
                raise
            except (OSError, http.client.HTTPException):
                # The connection is reset already; the next call opens a new one.
                log.exception("lost the Runtime API connection during invocation %s", invocation.request_id)
            except Exception:
                # Not the handler's failure (that is reported to the Runtime API): keep serving.
                log.exception("could not answer invocation %s", invocation.request_id)
            # Lambda freezes the process once /next is called: write out buffered logs first.
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
    finally:
        client.reset()


def load_handler(spec: str) -> Handler:
    """`module.function` (or `dir/module.function`), imported from sys.path."""
    module_name, _, function_name = spec.rpartition(".")
    if not module_name or not function_name:
        raise InitError("Runtime.MalformedHandlerName", f"Bad handler '{spec}': expected module.function")
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:
        raise InitError("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}") from exc
    except (Exception, SystemExit) as exc:  # a module may even call sys.exit() while it is imported
        message = f"Unable to import module '{module_name}': {type(exc).__name__}: {exc}"
        raise InitError("Runtime.ImportModuleError", message) from exc
    handler = getattr(module, function_name, None)
    if not callable(handler):
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        raise InitError("Runtime.HandlerNotFound", message)
    return cast(Handler, handler)


def _configure_logging() -> None:
    """Warnings and errors to stderr (CloudWatch), as on the managed runtime, unless configured."""
    root = logging.getLogger()
    if not root.handlers:
        level = _LOG_LEVELS.get(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper(), logging.WARNING)
        logging.basicConfig(level=level, format="[%(levelname)s] %(name)s: %(message)s")


def main() -> None:
    _configure_logging()
    runtime_api = os.environ["AWS_LAMBDA_RUNTIME_API"]
    sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT", "/var/task"))
    try:
        timing = StreamTiming.from_env(os.environ)
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except InitError as exc:
        cause = exc.__cause__ or exc
        log.error("init failed: %s", exc.message, exc_info=cause)
        payload = _error_payload(cause, exc.error_type)
        payload["errorMessage"] = exc.message
        RuntimeClient(runtime_api).post_error(INIT_ERROR_PATH, exc.error_type, payload)
        raise SystemExit(1) from None
    try:
        run(runtime_api, handler, timing=timing)
    except BodyStuck:
        # Its invocation was answered; exiting lets Lambda start a fresh execution environment
        # rather than thaw this one with the thread still running.
        log.critical("a response body did not stop by its deadline; stopping the runtime", exc_info=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
