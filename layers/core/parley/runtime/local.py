"""The local API: the route table, the handlers and the authorizer that Lambda runs, behind a
local HTTP server, on embedded AWS emulation (moto) and the built-in echo model.

    make serve            # or: python -m parley.runtime.local [--port 8000] [--routes functions/routes.py]

It plays API Gateway's part: routing by the route table, the REQUEST authorizer (with its
cache), gateway errors in Parley's error model, proxy events; and Lambda's: handlers are
loaded from functions/<name>/handler.py and invoked with the event. Streaming routes are
written to the client chunk by chunk, as the handler yields them.

Powertools' resolver keeps the current event on a class shared by every app in a process, so
invocations (not the draining of streams) are serialised, as in one Lambda environment.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
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

from parley.api.errors import gateway_error
from parley.api.routing import Route, RouteTable, load_module, load_route_table
from parley.api.streaming import StreamingResponse, error_event, from_proxy_result, prime
from parley.runtime import events

log = logging.getLogger("parley.local")

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
AUTHORIZER_CACHE_SECONDS = 300.0


@dataclass
class LocalResponse:
    status: int
    headers: dict[str, str]
    body: Iterator[bytes]
    streaming: bool = False
    cookies: list[str] = field(default_factory=list)


@dataclass
class FakeLambdaContext:
    function_name: str
    aws_request_id: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    deadline: float = field(default_factory=lambda: time.monotonic() + 900)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{events.REGION}:{events.ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class LocalApi:
    """API Gateway + Lambda for one route table, independent of the HTTP server (testable)."""

    def __init__(self, table: RouteTable, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.table = table
        self._clock = clock
        self._modules: dict[str, ModuleType] = {}
        self._load_lock = threading.Lock()
        self._invoke_lock = threading.Lock()
        self._auth_cache: dict[str, tuple[float, dict[str, Any] | None]] = {}

    # Lambda's part
    def handler(self, function: str) -> Callable[[dict[str, Any], Any], Any]:
        with self._load_lock:
            if function not in self._modules:
                path = self.table.handler_path(function)
                self._modules[function] = load_module(path, f"parley_function_{function}")
        return self._modules[function].lambda_handler  # type: ignore[no-any-return]

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        handler = self.handler(function)
        context = FakeLambdaContext(function, event.get("requestContext", {}).get("requestId", str(uuid.uuid4())))
        with self._invoke_lock:
            return handler(event, context)

    # API Gateway's part
    def handle(self, method: str, target: str, headers: Mapping[str, list[str]], body: bytes) -> LocalResponse:
        request_id = str(uuid.uuid4())
        url = urlsplit(target)
        path = url.path.rstrip("/") or "/"
        found = self.table.find(method, path)
        if found is None:
            return self._gateway("MISSING_AUTHENTICATION_TOKEN", request_id)
        route, params = found
        query = parse_qs(url.query, keep_blank_values=True) or None
        authorizer: dict[str, Any] | None = None
        if route.permission is not None:
            outcome = self._authorize(route, method, path, headers, query, params, request_id)
            if isinstance(outcome, LocalResponse):
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
        try:
            result = self.invoke(route.function, event)
        except Exception:
            log.exception("function %s failed", route.function)
            return self._gateway("DEFAULT_5XX", request_id)
        if isinstance(result, StreamingResponse):
            primed = prime(result, request_id)
            return LocalResponse(primed.status, primed.headers, primed.body, streaming=True, cookies=primed.cookies)
        normalised = from_proxy_result(result)
        return LocalResponse(normalised.status, normalised.headers, normalised.body, cookies=normalised.cookies)

    def _authorize(
        self,
        route: Route,
        method: str,
        path: str,
        headers: Mapping[str, list[str]],
        query: Mapping[str, list[str]] | None,
        params: Mapping[str, str],
        request_id: str,
    ) -> dict[str, Any] | LocalResponse:
        token = next((v[-1] for k, v in headers.items() if k.lower() == "authorization" and v and v[-1]), None)
        if token is None:  # API Gateway answers without calling the authorizer
            return self._gateway("UNAUTHORIZED", request_id)
        now = self._clock()
        cached = self._auth_cache.get(token)
        if cached is None or cached[0] <= now:
            event = events.authorizer_event(
                method, path, route.path, headers=headers, query=query, path_parameters=params, request_id=request_id
            )
            try:
                policy: dict[str, Any] | None = self.invoke(self.table.authorizer, event)
            except Exception as exc:
                if str(exc) != "Unauthorized":
                    log.exception("authorizer failed")
                    return self._gateway("DEFAULT_5XX", request_id)
                policy = None
            cached = (now + AUTHORIZER_CACHE_SECONDS, policy)
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
        return self._gateway(response_type, str(uuid.uuid4()))


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


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "parley-local"
    api: LocalApi  # set on the subclass the server builds

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.info("%s %s", self.address_string(), format % args)

    def _dispatch(self) -> None:
        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers.setdefault(name, []).append(value)
        try:
            body = self._read_body()
        except _TooLarge:
            self.close_connection = True
            self._write(self.api.gateway_response("REQUEST_TOO_LARGE"))
            return
        self._write(self.api.handle(self.command, self.path, headers, body))

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > MAX_REQUEST_BYTES:
                    raise _TooLarge
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            raise _TooLarge
        return self.rfile.read(length) if length else b""

    def _write(self, response: LocalResponse) -> None:
        self.send_response(
            response.status,
            HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else None,
        )
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        for cookie in response.cookies:
            self.send_header("Set-Cookie", cookie)
        if not response.streaming:
            body = b"".join(response.body)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        request_id = response.headers.get("x-request-id")
        try:
            try:
                for chunk in response.body:
                    if chunk:
                        self._chunk(chunk)
            except (BrokenPipeError, ConnectionResetError):
                raise
            except Exception as exc:  # noqa: BLE001 - a failure mid-stream ends the stream with an error event
                self._chunk(error_event(exc, request_id))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            log.info("client went away mid-stream")
        finally:
            close = getattr(response.body, "close", None)
            if close is not None:
                close()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch


class _TooLarge(Exception):
    pass


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default backlog (5) drops connections when many clients connect at once

    def __init__(self, api: LocalApi, host: str = "127.0.0.1", port: int = 8000) -> None:
        handler = type("Handler", (_RequestHandler,), {"api": api})
        super().__init__((host, port), handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up is routine for a server; anything else is logged with its traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
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


def seed(api_key: str | None) -> str:
    """Create the tables (from the shared schema), the documents bucket, and a key with every permission;
    return its secret."""
    from parley.services.keys import issue_key  # noqa: PLC0415
    from parley.storage.provision import provision  # noqa: PLC0415

    provision()
    issued = issue_key(LOCAL_ORG, LOCAL_PROJECT, ("*",), name="local", secret=api_key or None)
    return issued.secret


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="parley-local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: $PARLEY_PORT or 8000")
    parser.add_argument("--routes", type=Path, default=Path("functions/routes.py"))
    args = parser.parse_args(argv)
    port = args.port if args.port is not None else int(os.environ.get("PARLEY_PORT", "8000"))
    for name, value in LOCAL_ENV.items():
        os.environ.setdefault(name, value)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    from moto import mock_aws  # noqa: PLC0415 - a development dependency, never in Lambda

    table = load_route_table(args.routes)
    with mock_aws():
        secret = seed(os.environ.get("PARLEY_LOCAL_API_KEY"))
        server = LocalServer(LocalApi(table), args.host, port)

        def stop(signum: int, _frame: object) -> None:
            # shutdown() waits for serve_forever to return, so it cannot run on this (the serving) thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

        # Installed before "ready" is printed, so a Ctrl-C or SIGTERM at any moment stops cleanly.
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        print(_banner(server.url, secret), flush=True)
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            server.server_close()
        print("parley: stopped", flush=True)
    return 0


def _banner(url: str, secret: str) -> str:
    return f"""parley: local API on {url}  (AWS emulated in-process by moto; model: echo)
parley: API key: {secret}
parley: try
  curl -s {url}/v1/chat/completions \\
    -H 'Authorization: Bearer {secret}' -H 'Content-Type: application/json' \\
    -d '{{"model": "echo", "messages": [{{"role": "user", "content": "Hello, Parley!"}}]}}'
parley: ready (Ctrl-C stops)"""


if __name__ == "__main__":
    sys.exit(main())
