"""The local API: the route table, the handlers and the authorizer that Lambda runs, behind a
local HTTP server, on AWS emulation (moto) kept under .parley/, and the built-in echo model.

    make serve            # or: python -m parley.runtime.local [--port 8000] [--ephemeral] [--log-level INFO]

It plays API Gateway's part: routing by the route table, the REQUEST authorizer (with its
cache), CORS preflight, the payload, URL and header limits, the 29 s limit of buffered routes
and the 15 min of streams, gateway errors in Parley's error model, proxy events; and Lambda's:
each invocation runs in an execution environment of its own function (a worker process, see
parley.runtime.environments), created on demand and reused warm. Streaming routes are written
to the client chunk by chunk, as the handler yields them. The emulation, its lock and its
snapshots are parley.runtime.emulation.

`LocalApi` without environments runs handlers in this process, one invocation at a time (the
in-process tests use that; Powertools' per-process state allows no more).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets as secrets_module
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from parley.api.cors import CorsConfig
from parley.api.errors import error_body, gateway_error
from parley.api.routing import Route, RouteTable, load_module, load_route_table
from parley.api.streaming import StreamingResponse, error_event, from_proxy_result, prime
from parley.runtime import events
from parley.runtime.environments import (
    Environments,
    FakeLambdaContext,
    FunctionError,
    Invocation,
    InvocationTimeout,
)

__all__ = ["LOCAL_ENV", "FakeLambdaContext", "LocalApi", "LocalResponse", "LocalServer", "main"]

log = logging.getLogger("parley.local")
access_log = logging.getLogger("parley.access")

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
MAX_URL_CHARS = 8192  # API Gateway's URL length limit
MAX_HEADER_BYTES = 10240  # API Gateway: request line and header values together
BUFFERED_TIMEOUT_SECONDS = 29.0  # API Gateway's integration timeout
STREAM_TIMEOUT_SECONDS = 900.0  # a streamed response may last 15 minutes
BODY_TIMEOUT_SECONDS = 10.0  # a body that stops short of its Content-Length gets 400 after this long


@dataclass
class LocalResponse:
    status: int
    headers: dict[str, str]
    body: Iterator[bytes]
    streaming: bool = False
    cookies: list[str] = field(default_factory=list)
    request_id: str = ""
    # (function, cold, init ms) of each invocation the request made, authorizer first
    invocations: list[tuple[str, bool, float]] = field(default_factory=list)


class LocalApi:
    """API Gateway + Lambda for one route table, independent of the HTTP server (testable)."""

    def __init__(
        self,
        table: RouteTable,
        *,
        clock: Callable[[], float] = time.monotonic,
        environments: Environments | None = None,
        cors: CorsConfig | None = None,
        buffered_timeout: float = BUFFERED_TIMEOUT_SECONDS,
        stream_timeout: float = STREAM_TIMEOUT_SECONDS,
    ) -> None:
        self.table = table
        self.environments = environments
        self.cors = cors or CorsConfig()
        self.buffered_timeout = buffered_timeout
        self.stream_timeout = stream_timeout
        self._clock = clock
        self._modules: dict[str, ModuleType] = {}
        self._load_lock = threading.Lock()
        self._invoke_lock = threading.Lock()
        self._auth_cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._auth_lock = threading.Lock()

    # Lambda's part
    def handler(self, function: str) -> Callable[[dict[str, Any], Any], Any]:
        with self._load_lock:
            if function not in self._modules:
                path = self.table.handler_path(function)
                self._modules[function] = load_module(path, f"parley_function_{function}")
        return self._modules[function].lambda_handler  # type: ignore[no-any-return]

    def invoke(self, function: str, event: dict[str, Any], timeout: float = BUFFERED_TIMEOUT_SECONDS) -> Invocation:
        if self.environments is not None:
            return self.environments.invoke(function, event, timeout)
        cold = function not in self._modules
        started = time.perf_counter()
        handler = self.handler(function)
        init_ms = (time.perf_counter() - started) * 1000 if cold else 0.0
        request_id = event.get("requestContext", {}).get("requestId", str(uuid.uuid4()))
        context = FakeLambdaContext(function, request_id, deadline=time.monotonic() + timeout)
        with self._invoke_lock:
            try:
                return Invocation(handler(event, context), cold, init_ms)
            except Exception as exc:
                raise FunctionError(type(exc).__name__, str(exc)) from exc

    # API Gateway's part
    def handle(self, method: str, target: str, headers: Mapping[str, list[str]], body: bytes) -> LocalResponse:
        request_id = str(uuid.uuid4())
        response = self._handle(method, target, headers, body, request_id)
        response.request_id = request_id
        response.headers.setdefault("x-amzn-RequestId", request_id)  # API Gateway adds it to every response
        # Gateway responses and function responses alike carry CORS headers for an allowed origin.
        response.headers.update(self.cors.response_headers(_header(headers, "origin")))
        return response

    def _handle(
        self, method: str, target: str, headers: Mapping[str, list[str]], body: bytes, request_id: str
    ) -> LocalResponse:
        url = urlsplit(target)
        path = url.path.rstrip("/") or "/"
        if method == "OPTIONS":
            return self._preflight(path, headers, request_id)
        found = self.table.find(method, path)
        if found is None:
            return self._gateway("MISSING_AUTHENTICATION_TOKEN", request_id)
        route, params = found
        query = parse_qs(url.query, keep_blank_values=True) or None
        authorizer: dict[str, Any] | None = None
        invocations: list[tuple[str, bool, float]] = []
        if route.permission is not None:
            outcome = self._authorize(route, method, path, headers, query, params, request_id, invocations)
            if isinstance(outcome, LocalResponse):
                outcome.invocations = invocations
                return outcome
            authorizer = outcome
        event = events.proxy_event(
            method,
            path,
            route.path,
            path_parameters=params,
            query=query,
            headers=headers,
            body=body,
            authorizer=authorizer,
            request_id=request_id,
        )
        response = self._call(route, event, request_id, invocations)
        response.invocations = invocations
        return response

    def _call(
        self, route: Route, event: dict[str, Any], request_id: str, invocations: list[tuple[str, bool, float]]
    ) -> LocalResponse:
        timeout = self.stream_timeout if route.streaming else min(self.buffered_timeout, float(route.timeout_seconds))
        try:
            invocation = self.invoke(route.function, event, timeout)
        except InvocationTimeout:
            log.warning("%s ran past the %.0f s integration timeout", route.function, timeout)
            return self._gateway("INTEGRATION_TIMEOUT", request_id)
        except FunctionError as exc:
            log.error("function %s failed: %s: %s", route.function, exc.error_type, exc)
            return self._gateway("DEFAULT_5XX", request_id)
        invocations.append((route.function, invocation.cold, invocation.init_ms))
        result = invocation.result
        if isinstance(result, StreamingResponse):
            primed = prime(result, request_id)
            return LocalResponse(primed.status, primed.headers, primed.body, streaming=True, cookies=primed.cookies)
        normalised = from_proxy_result(result)
        return LocalResponse(normalised.status, normalised.headers, normalised.body, cookies=normalised.cookies)

    def _preflight(self, path: str, headers: Mapping[str, list[str]], request_id: str) -> LocalResponse:
        """What API Gateway's OPTIONS methods (CDK's default_cors_preflight_options) answer."""
        if not self.cors.enabled or not self.table.allowed_methods(path):
            return self._gateway("MISSING_AUTHENTICATION_TOKEN", request_id)
        allowed = self.cors.preflight_headers(_header(headers, "origin")) or {}
        return LocalResponse(204, {**allowed, "x-request-id": request_id}, iter(()))

    def _authorize(
        self,
        route: Route,
        method: str,
        path: str,
        headers: Mapping[str, list[str]],
        query: Mapping[str, list[str]] | None,
        params: Mapping[str, str],
        request_id: str,
        invocations: list[tuple[str, bool, float]],
    ) -> dict[str, Any] | LocalResponse:
        token = _header(headers, "authorization")
        if not token:  # API Gateway answers without calling the authorizer
            return self._gateway("UNAUTHORIZED", request_id)
        now = self._clock()
        with self._auth_lock:
            cached = self._auth_cache.get(token)
        if cached is None or cached[0] <= now:
            event = events.authorizer_event(
                method, path, route.path, headers=headers, query=query, path_parameters=params, request_id=request_id
            )
            try:
                invocation = self.invoke(self.table.authorizer, event, BUFFERED_TIMEOUT_SECONDS)
                invocations.append((self.table.authorizer, invocation.cold, invocation.init_ms))
                policy: dict[str, Any] | None = invocation.result
            except InvocationTimeout:
                return self._gateway("DEFAULT_5XX", request_id)
            except FunctionError as exc:
                if str(exc) != "Unauthorized":
                    log.error("authorizer failed: %s: %s", exc.error_type, exc)
                    return self._gateway("DEFAULT_5XX", request_id)
                policy = None
            cached = (now + self.table.authorizer_cache_seconds, policy)
            with self._auth_lock:
                self._auth_cache[token] = cached
        policy = cached[1]
        if policy is None:
            return self._gateway("UNAUTHORIZED", request_id)
        if not _allows(policy, events.method_arn(method, path)):
            return self._gateway("ACCESS_DENIED", request_id)
        return {"principalId": policy.get("principalId"), **(policy.get("context") or {})}

    def _gateway(self, response_type: str, request_id: str) -> LocalResponse:
        error = gateway_error(response_type)
        body = json.dumps(error.body(request_id)).encode()
        return LocalResponse(
            error.status, {"Content-Type": "application/json", "x-request-id": request_id}, iter([body])
        )

    def gateway_response(self, response_type: str) -> LocalResponse:
        request_id = str(uuid.uuid4())
        response = self._gateway(response_type, request_id)
        response.request_id = request_id
        return response


def _header(headers: Mapping[str, list[str]], name: str) -> str | None:
    """A header's last value, by case-insensitive name (as API Gateway matches them)."""
    for key, values in headers.items():
        if key.lower() == name and values and values[-1]:
            return values[-1]
    return None


def _allows(policy: Mapping[str, Any], arn: str) -> bool:
    """IAM evaluation for an authorizer policy: an explicit Deny wins, else any Allow matching."""
    allowed = False
    for statement in (policy.get("policyDocument") or {}).get("Statement", []):
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if any(_arn_matches(pattern, arn) for pattern in resources):
            if statement.get("Effect") == "Deny":
                return False
            allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def _arn_matches(pattern: str, arn: str) -> bool:
    import fnmatch  # noqa: PLC0415 - only the local server needs it

    return fnmatch.fnmatchcase(arn, pattern)


class _BadRequest(Exception):
    pass


class _TooLarge(Exception):
    pass


# The server's own answers (before any route): status -> (type, code, message).
_OWN_ERRORS = {
    400: ("invalid_request_error", "bad_request", "The request could not be parsed."),
    408: ("invalid_request_error", "request_timeout", "The request did not arrive in time."),
    414: ("invalid_request_error", "uri_too_long", f"The URL is longer than API Gateway accepts ({MAX_URL_CHARS})."),
    431: (
        "invalid_request_error",
        "headers_too_large",
        f"The request line and headers are larger than API Gateway accepts ({MAX_HEADER_BYTES} bytes).",
    ),
}


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "parley-local"
    timeout = 310  # an idle or stalled connection is closed (streams may idle 5 minutes)
    # TCP_NODELAY on every accepted socket (StreamRequestHandler.setup): with Nagle on, a write
    # that follows another unacknowledged one waits for the client's delayed ACK (~40 ms). The
    # writes are few anyway: headers go out with the first body bytes (`_write`).
    disable_nagle_algorithm = True
    api: LocalApi  # set on the subclass the server builds
    body_timeout: float = BODY_TIMEOUT_SECONDS

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own errors (bad request line, too long, unknown method) in the error model."""
        type_, error_code, default = _OWN_ERRORS.get(code, _OWN_ERRORS[400])
        request_id = str(uuid.uuid4())
        body = json.dumps(error_body(type_, error_code, message or default, request_id=request_id)).encode()
        self.close_connection = True
        self.send_response(code, HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else None)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-request-id", request_id)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        access_log.info(
            "%s %s %d 0ms - rid=%s", getattr(self, "command", "-"), getattr(self, "path", "-")[:200], code, request_id
        )

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if len(self.path) > MAX_URL_CHARS:
            self.send_error(414)
            return False
        size = len(self.requestline) + sum(len(name) + len(value) for name, value in self.headers.items())
        if size > MAX_HEADER_BYTES:
            self.send_error(431)
            return False
        return True

    def _dispatch(self) -> None:
        started = time.perf_counter()
        headers: dict[str, list[str]] = {}
        spelling: dict[str, str] = {}
        for name, value in self.headers.items():
            # One entry per header whatever the case it was sent in (API Gateway merges them too).
            headers.setdefault(spelling.setdefault(name.lower(), name), []).append(value)
        try:
            body = self._read_body()
        except _TooLarge:
            self.close_connection = True
            response = self.api.gateway_response("REQUEST_TOO_LARGE")
        except _BadRequest as bad:
            self.send_error(400, str(bad))
            return
        else:
            response = self.api.handle(self.command, self.path, headers, body)
        self._write(response)
        self._log(response, started)

    def _log(self, response: LocalResponse, started: float) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        calls = response.invocations
        if not calls:
            start = "-"
        else:
            function, cold, init_ms = calls[-1]
            start = (f"cold(init {init_ms:.0f}ms)" if cold else "warm") + f" fn={function}"
            if len(calls) > 1 and calls[0][1]:
                start += f" authorizer=cold(init {calls[0][2]:.0f}ms)"
        path = urlsplit(self.path).path
        access_log.info(
            "%s %s %d %.0fms %s rid=%s", self.command, path, response.status, elapsed, start, response.request_id
        )

    def _read_body(self) -> bytes:
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        lengths = self.headers.get_all("Content-Length") or []
        if chunked and lengths:
            raise _BadRequest("Content-Length and Transfer-Encoding: chunked cannot both be sent.")
        self.connection.settimeout(self.body_timeout)
        try:
            return self._read_chunked() if chunked else self._read_sized(lengths)
        except TimeoutError as exc:
            raise _BadRequest(f"The request body did not arrive within {self.body_timeout:.0f} s.") from exc
        finally:
            self.connection.settimeout(self.timeout)

    def _read_sized(self, lengths: list[str]) -> bytes:
        if not lengths:
            return b""
        if len(set(lengths)) > 1 or not lengths[0].strip().isdigit():
            raise _BadRequest("Content-Length must be one non-negative integer.")
        length = int(lengths[0])
        if length > MAX_REQUEST_BYTES:
            raise _TooLarge
        data = self.rfile.read(length) if length else b""
        if len(data) < length:
            raise _BadRequest("The request body is shorter than its Content-Length.")
        return data

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError as exc:
                raise _BadRequest("Malformed chunked body.") from exc
            if size < 0:
                raise _BadRequest("Malformed chunked body.")
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_REQUEST_BYTES:
                raise _TooLarge
            part = self.rfile.read(size)
            if len(part) < size:
                raise _BadRequest("The chunked body ended early.")
            parts.append(part)
            self.rfile.readline(1024)

    def _write(self, response: LocalResponse) -> None:
        """One `write` for the status line, the headers and the first body bytes (the whole body of
        a buffered response, the first chunk of a stream, already produced by `prime`), then one
        per chunk: with TCP_NODELAY on, each write is a segment sent at once, and nothing waits
        for the client's delayed ACK."""
        self.send_response(
            response.status,
            HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else None,
        )
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        for cookie in response.cookies:
            self.send_header("Set-Cookie", cookie)
        if self.close_connection:
            self.send_header("Connection", "close")
        if not response.streaming:
            body = b"".join(response.body)
            self.send_header("Content-Length", str(len(body)))
            self.wfile.write(self._head() + (body if self.command != "HEAD" else b""))
            return
        self.send_header("Transfer-Encoding", "chunked")
        head = self._head()
        try:
            try:
                for chunk in response.body:
                    if chunk:
                        self.wfile.write(head + _framed(chunk))
                        head = b""
            except (BrokenPipeError, ConnectionResetError):
                raise
            except Exception as exc:  # noqa: BLE001 - a failure mid-stream ends the stream with an error event
                self.wfile.write(head + _framed(error_event(exc, response.request_id)))
                head = b""
            self.wfile.write(head + b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
            log.info("client went away mid-stream")
        finally:
            close = getattr(response.body, "close", None)
            if close is not None:
                close()

    def _head(self) -> bytes:
        """The status line and headers `send_response`/`send_header` buffered, ended, taken out
        of the buffer (what `end_headers` would write on its own)."""
        buffered: list[bytes] = getattr(self, "_headers_buffer", [])
        self._headers_buffer: list[bytes] = []
        return b"".join(buffered) + b"\r\n"

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, QUERY, BREW) is a method no route has: answered like PUT on
        # /v1/health, 404 route_not_found as API Gateway answers, not with the stdlib's 501 (a 5xx for
        # a client's request).
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)


def _framed(data: bytes) -> bytes:
    """One chunk of a chunked body: its size in hex, CRLF, the bytes, CRLF."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default backlog (5) drops connections when many clients connect at once

    def __init__(
        self, api: LocalApi, host: str = "127.0.0.1", port: int = 8000, *, body_timeout: float = BODY_TIMEOUT_SECONDS
    ) -> None:
        handler = type("Handler", (_RequestHandler,), {"api": api, "body_timeout": body_timeout})
        super().__init__((host, port), handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up is routine for a server; anything else is logged with its traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.info("client %s went away: %s", client_address, error)
            return
        log.exception("request from %s failed", client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


LOCAL_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": events.REGION,
    "AWS_REGION": events.REGION,
    "PARLEY_STAGE": "local",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "parley",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}

LOCAL_ORG, LOCAL_PROJECT = "org_local", "proj_local"
KEY_FILE = "local-key"  # the default key's secret, so the printed key stays the same across restarts
SERVER_FILE = "server.json"  # where the running server's emulation listens (parley-admin --local)


def seed(api_key: str | None) -> str:
    """Create what is missing (tables from the shared schema, the documents bucket, the metering
    queue; a restored state has them) and make sure the default project's admin key exists;
    return its secret."""
    from parley.services.keys import ensure_listed, ensure_project, issue_key  # noqa: PLC0415
    from parley.storage.keys import KeyRepository, hash_secret  # noqa: PLC0415
    from parley.storage.provision import provision  # noqa: PLC0415

    provision()
    secret = api_key or "prl_" + secrets_module.token_urlsafe(32)
    existing = KeyRepository().get_by_hash(hash_secret(secret))
    if existing is None:
        issue_key(LOCAL_ORG, LOCAL_PROJECT, ("*",), name="local", secret=secret)
    else:  # a state saved before keys were listed and projects kept
        ensure_project(existing.org_id, existing.project_id)
        ensure_listed(existing)
    return secret


def _providers_line() -> str:
    from parley.storage.providers import ProviderRepository  # noqa: PLC0415

    records, _ = ProviderRepository().page(LOCAL_PROJECT, 100, None)
    stored = [f"{r.name} ({r.type})" for r in records]
    return ", ".join(["echo (built in)", *stored])


def _level(value: str) -> str:
    name = value.upper()
    if name not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise argparse.ArgumentTypeError(f"{value!r}: one of DEBUG, INFO, WARNING, ERROR")
    return name


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley-local", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: $PARLEY_PORT or 8000")
    parser.add_argument("--routes", type=Path, default=Path("functions/routes.py"))
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $PARLEY_DATA_DIR or .parley")
    parser.add_argument("--ephemeral", action="store_true", help="keep nothing: state lives in memory only")
    parser.add_argument(
        "--log-level", type=_level, default=None, help="DEBUG, INFO (default; one line per request), WARNING, ERROR"
    )
    parser.add_argument(
        "--max-environments", type=int, default=128, help="worker processes in all (default 128, ~35 MB each)"
    )
    parser.add_argument(
        "--cors-origins", default=None, help="comma-separated origins; default: $PARLEY_CORS_ALLOW_ORIGINS or *"
    )
    parser.add_argument("--buffered-timeout", type=float, default=BUFFERED_TIMEOUT_SECONDS, help=argparse.SUPPRESS)
    parser.add_argument("--stream-timeout", type=float, default=STREAM_TIMEOUT_SECONDS, help=argparse.SUPPRESS)
    parser.add_argument("--body-timeout", type=float, default=BODY_TIMEOUT_SECONDS, help=argparse.SUPPRESS)
    parser.add_argument("--snapshot-interval", type=float, default=1.0, help=argparse.SUPPRESS)
    # seconds per minute of the schedule (the sweep runs every 5 "minutes"); tests make it short
    parser.add_argument("--schedule-minute", type=float, default=60.0, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    port = args.port if args.port is not None else int(os.environ.get("PARLEY_PORT", "8000"))
    level = args.log_level or _level(os.environ.get("PARLEY_LOG_LEVEL", "INFO"))
    for name, value in LOCAL_ENV.items():
        os.environ.setdefault(name, value)
    if level == "DEBUG":
        os.environ["POWERTOOLS_LOG_LEVEL"] = "DEBUG"
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("parley").setLevel(level)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    from parley.runtime.emulation import Emulation, IncompatibleState  # noqa: PLC0415

    data_dir = None if args.ephemeral else (args.data_dir or Path(os.environ.get("PARLEY_DATA_DIR") or ".parley"))
    data_dir = data_dir.resolve() if data_dir is not None else None
    emulation = Emulation(data_dir, interval=args.snapshot_interval)
    try:
        emulation.start()
    except IncompatibleState as exc:
        print(
            f"parley: cannot use the data folder {data_dir}: {exc}.\n"
            f"parley: start the version that wrote it, or reset it (this deletes every conversation, key and "
            f"document in it): rm -rf {data_dir}",
            file=sys.stderr,
        )
        return 2
    secret = _connect(emulation.endpoint, data_dir)
    search_scratch = _search_path(data_dir)
    table = load_route_table(args.routes)
    info = {"emulation_url": emulation.endpoint, "pid": os.getpid()}
    info_file = (data_dir or Path(tempfile.gettempdir())) / (SERVER_FILE if data_dir else f"parley-{os.getpid()}.json")
    cors = CorsConfig.from_origins(args.cors_origins or os.environ.get("PARLEY_CORS_ALLOW_ORIGINS"))
    # the functions answer a browser's actual requests with the same origins, as CDK configures them
    function_env = {**os.environ, "PARLEY_CORS_ALLOW_ORIGINS": ",".join(cors.allow_origins)}
    environments = Environments(table.handler_path, function_env, max_environments=args.max_environments)
    api = LocalApi(
        table,
        environments=environments,
        cors=cors,
        buffered_timeout=args.buffered_timeout,
        stream_timeout=args.stream_timeout,
    )
    try:
        server = LocalServer(api, args.host, port, body_timeout=args.body_timeout)
    except OSError as exc:
        print(f"parley: cannot listen on {args.host}:{port}: {exc}", file=sys.stderr)
        environments.close()
        emulation.stop()
        return 2
    info["url"] = server.url
    info_file.write_text(json.dumps(info))

    def stop(signum: int, _frame: object) -> None:
        # shutdown() waits for serve_forever to return, so it cannot run on this (the serving) thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    # Installed before "ready" is printed, so a Ctrl-C or SIGTERM at any moment stops cleanly.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(_banner(server.url, secret, data_dir, emulation, _providers_line(), info_file), flush=True)
    try:
        _serve(server, table, api, args.schedule_minute)
    finally:
        environments.close()
        emulation.stop()
        info_file.unlink(missing_ok=True)
        if search_scratch is not None:
            shutil.rmtree(search_scratch, ignore_errors=True)
    where = f"; state saved in {data_dir}" if data_dir is not None else ""
    print(f"parley: stopped{where}", flush=True)
    return 0


def _search_path(data_dir: Path | None) -> Path | None:
    """Tell the worker processes (they inherit this environment) where the local search engine's
    file is: `<data dir>/search.sqlite3`, or a temporary folder's when ephemeral (returned, to be
    removed at exit). An explicit PARLEY_SEARCH_PATH wins."""
    from parley.search.factory import LOCAL_FILE  # noqa: PLC0415
    from parley.settings import set_settings  # noqa: PLC0415

    if os.environ.get("PARLEY_SEARCH_PATH"):
        return None
    scratch = None if data_dir is not None else Path(tempfile.mkdtemp(prefix="parley-search-"))
    os.environ["PARLEY_SEARCH_PATH"] = str((data_dir or scratch or Path()) / LOCAL_FILE)
    set_settings(None)
    return scratch


def _serve(server: LocalServer, table: RouteTable, api: LocalApi, schedule_minute: float) -> None:
    """Serve until shut down, with the table's scheduled functions running on their interval and
    its consumers fed from the streams and queues (the event pipeline), all in the background."""
    from parley.aws import clients  # noqa: PLC0415
    from parley.runtime.pipeline import Pipeline  # noqa: PLC0415
    from parley.runtime.schedule import Schedule  # noqa: PLC0415
    from parley.settings import get_settings  # noqa: PLC0415

    schedule = Schedule(table.scheduled, api.invoke, seconds_per_minute=schedule_minute)
    pipeline = Pipeline(table.consumers, api.invoke, clients(), get_settings())
    schedule.start()
    pipeline.start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        pipeline.stop()
        schedule.stop()
        server.server_close()


def _connect(endpoint: str, data_dir: Path | None) -> str:
    """Point this process (and the environments it starts) at the emulation, seed it, and return
    the default key's secret: $PARLEY_LOCAL_API_KEY, else the one kept in the data folder."""
    from parley.aws import set_clients  # noqa: PLC0415
    from parley.settings import set_settings  # noqa: PLC0415

    # Every AWS client, here and in every execution environment, reaches the one emulation.
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    set_settings(None)
    set_clients(None)
    key_file = data_dir / KEY_FILE if data_dir is not None else None
    stored_key = key_file.read_text().strip() if key_file is not None and key_file.exists() else None
    secret = seed(os.environ.get("PARLEY_LOCAL_API_KEY") or stored_key)
    if key_file is not None and stored_key != secret:
        key_file.write_text(secret + "\n")
        key_file.chmod(0o600)
    return secret


def _banner(url: str, secret: str, data_dir: Path | None, emulation: Any, providers: str, info_file: Path) -> str:
    if data_dir is None:
        data = "parley: data: in memory only (--ephemeral); everything is gone when the server stops"
        admin = f"parley-admin create-key --local --server-file {info_file} --org org_b --project proj_b"
    else:
        state = "restored" if emulation.restored else "new"
        data = (
            f"parley: data: {data_dir} ({state}; saved every second and on exit)\n"
            f"parley: reset: stop the server, then rm -rf {data_dir}  (or run with --ephemeral)"
        )
        admin = "parley-admin create-key --local --org org_b --project proj_b"
    return f"""parley: local API on {url}  (AWS emulated by moto on {emulation.endpoint})
parley: API key: {secret}  (admin of {LOCAL_ORG}/{LOCAL_PROJECT})
{data}
parley: model providers: {providers}
parley: another project's key: .venv/bin/{admin}
parley: try
  curl -s {url}/v1/chat/completions \\
    -H 'Authorization: Bearer {secret}' -H 'Content-Type: application/json' \\
    -d '{{"model": "echo", "messages": [{{"role": "user", "content": "Hello, Parley!"}}]}}'
parley: ready (Ctrl-C stops)"""


if __name__ == "__main__":
    sys.exit(main())
