"""Contract tests of the Lambda streaming runtime adapter (parley.runtime.lambda_stream) and its
exec wrapper (layers/core/parley-stream), against a fake Runtime API on 127.0.0.1.

The fake hands out queued invocations on GET /next and, for a streamed /response POST,
parses the chunked framing itself as the bytes arrive, recording every HTTP chunk with its
arrival time, then the trailers.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from parley.api.streaming import StreamingResponse
from parley.domain.errors import InvalidRequest, ProviderError
from parley.domain.principal import Principal
from parley.runtime.lambda_stream import BodyPuller, BodyStuck, StreamTiming, run
from parley.settings import set_settings
from tests.handlers.api import Api

API = "/2018-06-01/runtime"
NUL8 = b"\x00" * 8
STREAM_HEADERS = {
    "lambda-runtime-function-response-mode": "streaming",
    "transfer-encoding": "chunked",
    "content-type": "application/vnd.awslambda.http-integration-response",
    "trailer": "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
}
ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "layers" / "core" / "parley-stream"


# --- the fake Runtime API ----------------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    """Some tests drop connections on purpose: a client hanging up is not worth a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Streamed:
    """What arrived on POST /invocation/{id}/response."""

    headers: list[tuple[str, str]]
    client: tuple[str, int]
    chunks: list[tuple[float, bytes]] = field(default_factory=list)  # (arrival time, HTTP chunk data)
    trailers: dict[str, str] = field(default_factory=dict)
    complete: bool = False  # the terminating zero-size chunk arrived

    def header_map(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers}

    def data(self) -> bytes:
        return b"".join(chunk for _, chunk in self.chunks)


@dataclass
class Posted:
    """What arrived on POST /invocation/{id}/error or /init/error."""

    headers: dict[str, str]
    body: dict[str, Any]


class FakeRuntime:
    def __init__(self) -> None:
        # (invocation id, event, headers, deadline in seconds from when /next hands it out)
        self.pending: queue.Queue[tuple[str, bytes, dict[str, str], float | None]] = queue.Queue()
        self.handed_out: dict[str, float] = {}  # invocation id -> when /next handed it out (monotonic)
        self.responses: dict[str, Streamed] = {}
        self.errors: dict[str, Posted] = {}
        self.init_errors: list[Posted] = []
        self.clients: list[tuple[str, int]] = []  # the peer of every request, in order
        self.ended: dict[tuple[str, int], threading.Event] = {}  # peer -> set when its connection ended
        self.abort_after: dict[str, int] = {}  # invocation id -> drop the connection after n chunks
        self.answered: dict[str, threading.Event] = {}
        self.stop = threading.Event()
        self.server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    def invoke(
        self,
        event: dict[str, Any],
        *,
        invocation_id: str,
        trace_id: str | None = None,
        deadline_ms: int | None = None,
        deadline_in_s: float | None = None,
    ) -> None:
        """Queue an invocation; its deadline is `deadline_ms`, or `deadline_in_s` after /next hands
        it out (so a slow start does not eat into it), or a minute away."""
        headers = {
            "Lambda-Runtime-Aws-Request-Id": invocation_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms or int(time.time() * 1000) + 60_000),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:eu-west-1:123456789012:function:parley-chat",
        }
        if trace_id:
            headers["Lambda-Runtime-Trace-Id"] = trace_id
        self.answered[invocation_id] = threading.Event()
        self.pending.put((invocation_id, json.dumps(event).encode(), headers, deadline_in_s))

    def wait_answered(self, invocation_id: str, timeout: float = 5.0) -> None:
        assert self.answered[invocation_id].wait(timeout), f"{invocation_id} was never answered"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
                pass

            def setup(self) -> None:
                super().setup()
                fake.ended[self.client_address[:2]] = threading.Event()

            def finish(self) -> None:
                # The fake keeps every connection alive: one ends when the client closes it (or a
                # test drops it on purpose).
                fake.ended[self.client_address[:2]].set()
                super().finish()

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self) -> None:
                fake.clients.append(self.client_address[:2])
                if self.path != f"{API}/invocation/next":
                    self._reply(404)
                    return
                while not fake.stop.is_set():
                    try:
                        invocation_id, payload, headers, deadline_in_s = fake.pending.get(timeout=0.05)
                    except queue.Empty:
                        continue
                    if deadline_in_s is not None:
                        deadline = int((time.time() + deadline_in_s) * 1000)
                        headers = {**headers, "Lambda-Runtime-Deadline-Ms": str(deadline)}
                    fake.handed_out[invocation_id] = time.monotonic()
                    self._reply(200, payload, {"Content-Type": "application/json", **headers})
                    return
                self.close_connection = True

            def do_POST(self) -> None:
                fake.clients.append(self.client_address[:2])
                parts = self.path.removeprefix(API).strip("/").split("/")
                if parts == ["init", "error"]:
                    fake.init_errors.append(self._read_posted())
                    self._reply(202, b'{"status":"OK"}')
                    return
                if len(parts) != 3 or parts[0] != "invocation":
                    self._reply(404)
                    return
                invocation_id, kind = parts[1], parts[2]
                if kind == "error":
                    fake.errors[invocation_id] = self._read_posted()
                elif kind == "response":
                    if not self._read_stream(invocation_id):
                        return  # connection dropped on purpose
                else:
                    self._reply(404)
                    return
                self._reply(202, b'{"status":"OK"}')
                fake.answered[invocation_id].set()

            def _read_posted(self) -> Posted:
                length = int(self.headers.get("Content-Length") or 0)
                return Posted(dict(self.headers.items()), json.loads(self.rfile.read(length)))

            def _read_stream(self, invocation_id: str) -> bool:
                record = Streamed(list(self.headers.items()), self.client_address[:2])
                fake.responses[invocation_id] = record
                assert self.headers.get("Transfer-Encoding") == "chunked"
                while True:
                    size_line = self.rfile.readline()
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        break
                    data = self.rfile.read(size)
                    arrived = time.monotonic()
                    assert self.rfile.read(2) == b"\r\n", "chunk not followed by CRLF"
                    record.chunks.append((arrived, data))
                    if len(record.chunks) == fake.abort_after.get(invocation_id):
                        # Drop the connection hard (RST), as a broken Runtime API connection would.
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.close_connection = True
                        return False
                while (line := self.rfile.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    record.trailers[name.strip()] = value.strip()
                record.complete = True
                return True

        return Handler


@pytest.fixture
def runtime() -> Iterator[FakeRuntime]:
    fake = FakeRuntime()
    fake.thread.start()
    yield fake
    fake.stop.set()
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture(autouse=True)
def _restore_trace_env() -> Iterator[None]:
    before = os.environ.get("_X_AMZN_TRACE_ID")
    yield
    if before is None:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    else:
        os.environ["_X_AMZN_TRACE_ID"] = before


def serve(
    fake: FakeRuntime,
    handler: Callable[[Any, Any], Any],
    invocations: int,
    timeout: float = 5.0,
    *,
    timing: StreamTiming | None = None,
    raises: type[BaseException] | None = None,
) -> None:
    """Run the adapter's loop in a thread for `invocations`, and wait for it to return (with
    `raises`: to raise that)."""
    failures: list[BaseException] = []

    def target() -> None:
        try:
            run(fake.address, handler, max_invocations=invocations, timing=timing)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            failures.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the runtime loop did not finish"
    if raises is None:
        assert not failures, f"the runtime loop raised {failures[0]!r}"
    else:
        assert len(failures) == 1
        assert isinstance(failures[0], raises), failures[0]


def api_event(request_id: str = "req-1", **extra: Any) -> dict[str, Any]:
    return {
        "resource": "/v1/chat/completions",
        "httpMethod": "POST",
        "requestContext": {"requestId": request_id},
        "body": "{}",
        **extra,
    }


def split_body(record: Streamed) -> tuple[dict[str, Any], list[bytes]]:
    """(prelude, the body's HTTP chunks after the 8-NUL delimiter). Fails if the framing is off;
    callers compare the body exactly, so a 9th NUL would show up there."""
    data = record.data()
    prelude, end = json.JSONDecoder().raw_decode(data.decode("latin-1"))
    assert end > 0
    assert data.startswith(b"{")
    assert data[end : end + 8] == NUL8, "the prelude is not followed by 8 NUL bytes"
    body_start, offset, chunks = end + 8, 0, []
    for _, chunk in record.chunks:
        part = chunk[max(body_start - offset, 0) :]
        offset += len(chunk)
        if part:
            chunks.append(part)
    return prelude, chunks


def stream_of(*chunks: bytes, status: int = 200, cookies: list[str] | None = None) -> StreamingResponse:
    return StreamingResponse(status, {"Content-Type": "text/event-stream"}, iter(chunks), cookies or [])


# --- the contract ------------------------------------------------------------------------------


def test_streaming_post_has_the_runtime_headers_and_body_starts_with_prelude_then_8_nuls(
    runtime: FakeRuntime,
) -> None:
    # Given a handler streaming one chunk with a cookie
    runtime.invoke(api_event("req-1"), invocation_id="inv-1")
    response = stream_of(b"data: 1\n\n", cookies=["session=abc; Path=/; HttpOnly"])

    # When the loop serves it
    serve(runtime, lambda event, context: response, 1)

    # Then the POST carries exactly the streaming-mode headers (plus Host)
    record = runtime.responses["inv-1"]
    headers = record.header_map()
    assert {k: v for k, v in headers.items() if k != "host"} == STREAM_HEADERS
    assert headers["host"].startswith("127.0.0.1")
    # and the body is the JSON prelude, 8 NUL bytes, then the chunk
    prelude, body = split_body(record)
    assert prelude == {
        "statusCode": 200,
        "headers": {"Content-Type": "text/event-stream"},
        "cookies": ["session=abc; Path=/; HttpOnly"],
    }
    assert body == [b"data: 1\n\n"]
    assert record.data().endswith(b"}" + NUL8 + b"data: 1\n\n")
    assert record.complete
    assert record.trailers == {}


def test_each_yielded_chunk_is_sent_as_its_own_http_chunk_as_soon_as_it_is_yielded(runtime: FakeRuntime) -> None:
    # Given a generator that sleeps 0.2 s between 4 chunks
    chunks = [f"data: {n}\n\n".encode() for n in range(4)]

    def body() -> Iterator[bytes]:
        for n, chunk in enumerate(chunks):
            if n:
                time.sleep(0.2)
            yield chunk

    runtime.invoke(api_event(), invocation_id="inv-1")

    # When the loop serves it
    serve(runtime, lambda event, context: StreamingResponse(200, {}, body()), 1)

    # Then each chunk arrived as a separate HTTP chunk, ~0.2 s apart, not all at the end
    record = runtime.responses["inv-1"]
    _, body_chunks = split_body(record)
    assert body_chunks == chunks
    times = [arrived for arrived, data in record.chunks if data in chunks]
    assert len(times) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= 0.15 for gap in gaps), gaps
    assert times[-1] - times[0] >= 0.45
    prelude_arrived = record.chunks[0][0]
    assert times[-1] - prelude_arrived >= 0.45, "the prelude waited for the body"


def test_a_proxy_dict_result_is_sent_as_prelude_and_body(runtime: FakeRuntime) -> None:
    # Given a handler answering API Gateway proxy dicts, one JSON and one base64-encoded
    binary = b"\x00\x01\x89PNG\r\n\x1a\n\x00\x00"
    created = {"id": "conv_1", "object": "conversation"}

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if event["requestContext"]["requestId"] == "req-json":
            return {
                "statusCode": 201,
                "headers": {"Content-Type": "application/json", "x-request-id": "req-json"},
                "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
                "body": json.dumps(created),
                "isBase64Encoded": False,
            }
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "image/png"},
            "body": base64.b64encode(binary).decode(),
            "isBase64Encoded": True,
        }

    runtime.invoke(api_event("req-json"), invocation_id="inv-json")
    runtime.invoke(api_event("req-bin"), invocation_id="inv-bin")

    # When the loop serves both
    serve(runtime, handler, 2)

    # Then each is a prelude with status, headers and cookies, then the decoded body
    prelude, body = split_body(runtime.responses["inv-json"])
    assert prelude == {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "x-request-id": "req-json"},
        "cookies": ["a=1", "b=2"],
    }
    assert json.loads(b"".join(body)) == created
    prelude, body = split_body(runtime.responses["inv-bin"])
    assert prelude == {"statusCode": 200, "headers": {"Content-Type": "image/png"}, "cookies": []}
    assert b"".join(body) == binary
    assert runtime.responses["inv-bin"].trailers == {}


def test_an_error_before_the_first_chunk_is_an_ordinary_error_response(runtime: FakeRuntime) -> None:
    # Given a generator that raises InvalidRequest before yielding anything
    def body() -> Iterator[bytes]:
        raise InvalidRequest("messages: must not be empty", param="messages")
        yield b"never"

    runtime.invoke(api_event("req-7"), invocation_id="inv-1")

    # When the loop serves it
    serve(runtime, lambda event, context: StreamingResponse(200, {"Content-Type": "text/event-stream"}, body()), 1)

    # Then the prelude says 400 with a JSON error body in the error model, and no trailers
    record = runtime.responses["inv-1"]
    prelude, chunks = split_body(record)
    assert prelude["statusCode"] == 400
    assert prelude["headers"]["Content-Type"] == "application/json"
    assert prelude["headers"]["x-request-id"] == "req-7"
    assert json.loads(b"".join(chunks)) == {
        "error": {
            "type": "invalid_request_error",
            "code": "invalid_request",
            "message": "messages: must not be empty",
            "param": "messages",
            "request_id": "req-7",
        }
    }
    assert record.complete
    assert record.trailers == {}


def test_a_failure_after_two_chunks_ends_with_an_sse_error_event_and_the_error_trailers(
    runtime: FakeRuntime,
) -> None:
    # Given a generator that fails after two chunks
    def body() -> Iterator[bytes]:
        yield b"data: 1\n\n"
        yield b"data: 2\n\n"
        raise ProviderError("upstream closed the stream")

    runtime.invoke(api_event("req-9"), invocation_id="inv-1")

    # When the loop serves it
    serve(runtime, lambda event, context: StreamingResponse(200, {}, body()), 1)

    # Then the two chunks arrive, then an SSE error event, then both error trailers
    record = runtime.responses["inv-1"]
    prelude, chunks = split_body(record)
    assert prelude["statusCode"] == 200
    assert chunks[:2] == [b"data: 1\n\n", b"data: 2\n\n"]
    assert len(chunks) == 3
    event_line, data_line, *_ = chunks[2].decode().split("\n")
    assert event_line == "event: error"
    error = json.loads(data_line.removeprefix("data: "))
    assert error["type"] == "error"
    assert error["error"]["type"] == "provider_error"
    assert error["error"]["request_id"] == "req-9"
    assert record.complete
    assert set(record.trailers) == {"Lambda-Runtime-Function-Error-Type", "Lambda-Runtime-Function-Error-Body"}
    assert record.trailers["Lambda-Runtime-Function-Error-Type"] == "ProviderError"
    trailer_body = json.loads(base64.b64decode(record.trailers["Lambda-Runtime-Function-Error-Body"]))
    assert trailer_body["errorType"] == "ProviderError"
    assert trailer_body["errorMessage"] == "upstream closed the stream"


def test_a_handler_that_raises_posts_the_invocation_error_and_the_loop_goes_on(runtime: FakeRuntime) -> None:
    # Given a handler that raises on the first invocation only
    def handler(event: dict[str, Any], context: Any) -> StreamingResponse:
        if context.aws_request_id == "inv-1":
            raise ValueError("boom")
        return stream_of(b"data: ok\n\n")

    runtime.invoke(api_event(), invocation_id="inv-1")
    runtime.invoke(api_event(), invocation_id="inv-2")

    # When the loop serves both
    serve(runtime, handler, 2)

    # Then the first is reported on /invocation/inv-1/error, and the second still streams
    assert "inv-1" not in runtime.responses
    posted = runtime.errors["inv-1"]
    assert posted.headers["Lambda-Runtime-Function-Error-Type"] == "ValueError"
    assert posted.body["errorType"] == "ValueError"
    assert posted.body["errorMessage"] == "boom"
    assert isinstance(posted.body["stackTrace"], list)
    assert posted.body["stackTrace"]
    assert split_body(runtime.responses["inv-2"])[1] == [b"data: ok\n\n"]
    # over one connection: only a streamed response closes it
    first = runtime.clients[0]
    assert runtime.clients[:3] == [first, first, first]
    assert runtime.responses["inv-2"].client == first


def test_the_trace_id_env_and_the_context_follow_each_invocation(
    runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the standard Lambda environment, and two invocations, only the first traced
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "parley-chat")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
    monkeypatch.setenv("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/parley-chat")
    monkeypatch.setenv("AWS_LAMBDA_LOG_STREAM_NAME", "2025/01/01/[$LATEST]abc")
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    deadline = int(time.time() * 1000) + 30_000
    runtime.invoke(api_event(), invocation_id="inv-1", trace_id=trace, deadline_ms=deadline)
    runtime.invoke(api_event(), invocation_id="inv-2")
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> StreamingResponse:
        seen.append(
            {
                "trace": os.environ.get("_X_AMZN_TRACE_ID"),
                "remaining": context.get_remaining_time_in_millis(),
                "request_id": context.aws_request_id,
                "arn": context.invoked_function_arn,
                "name": context.function_name,
                "version": context.function_version,
                "memory": context.memory_limit_in_mb,
                "log_group": context.log_group_name,
                "log_stream": context.log_stream_name,
            }
        )
        return stream_of(b"data: ok\n\n")

    # When the loop serves both
    serve(runtime, handler, 2)

    # Then the handler saw the trace id while it ran, the deadline, and the function's details
    first, second = seen
    assert first["trace"] == trace
    assert 28_000 < first["remaining"] <= 30_000
    assert first["request_id"] == "inv-1"
    assert first["arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:parley-chat"
    assert (first["name"], first["version"], first["memory"]) == ("parley-chat", "$LATEST", "1024")
    assert (first["log_group"], first["log_stream"]) == ("/aws/lambda/parley-chat", "2025/01/01/[$LATEST]abc")
    # and the untraced invocation does not inherit the previous trace id
    assert second["trace"] is None
    assert second["request_id"] == "inv-2"


def test_after_a_streamed_response_the_connection_is_closed_and_the_next_invocation_opens_a_new_one(
    runtime: FakeRuntime,
) -> None:
    # Given two invocations, and a fake Runtime API that would keep every connection alive
    runtime.invoke(api_event("req-a"), invocation_id="inv-a")
    runtime.invoke(api_event("req-b"), invocation_id="inv-b")

    def handler(event: dict[str, Any], context: Any) -> StreamingResponse:
        return stream_of(f"data: {event['requestContext']['requestId']}\n\n".encode())

    # When one loop serves both
    serve(runtime, handler, 2)

    # Then both streamed completely
    assert split_body(runtime.responses["inv-a"])[1] == [b"data: req-a\n\n"]
    assert split_body(runtime.responses["inv-b"])[1] == [b"data: req-b\n\n"]
    assert runtime.responses["inv-a"].complete
    assert runtime.responses["inv-b"].complete
    # and each GET /next and its streamed POST shared a connection, which the runtime closed
    # after the response (AWS's custom-runtime guide), so inv-b came over a new one
    first, second = runtime.responses["inv-a"].client, runtime.responses["inv-b"].client
    assert runtime.clients == [first, first, second, second]
    assert first != second
    assert runtime.ended[first].wait(2.0), "the runtime left the connection of a streamed response open"
    assert runtime.ended[second].wait(2.0)


def test_a_broken_connection_closes_the_generator_and_the_next_invocation_reconnects(runtime: FakeRuntime) -> None:
    # Given a Runtime API that drops the connection after the prelude and one chunk of inv-1,
    # and an endless generator (kept referenced here, so only an explicit close() ends it)
    runtime.abort_after["inv-1"] = 2
    runtime.invoke(api_event(), invocation_id="inv-1")
    runtime.invoke(api_event(), invocation_id="inv-2")
    closed = threading.Event()
    generators: list[Iterator[bytes]] = []

    def endless() -> Iterator[bytes]:
        try:
            for _ in range(500):
                yield b"data: tick\n\n"
                time.sleep(0.01)
        except GeneratorExit:
            closed.set()
            raise

    def handler(event: dict[str, Any], context: Any) -> StreamingResponse:
        if context.aws_request_id == "inv-1":
            generators.append(endless())
            return StreamingResponse(200, {}, generators[-1])
        return stream_of(b"data: fine\n\n")

    # When the loop serves both
    serve(runtime, handler, 2)

    # Then the generator was closed, and inv-2 streamed on a new connection
    assert closed.is_set(), "the generator was not closed when sending failed"
    assert not runtime.responses["inv-1"].complete
    assert runtime.responses["inv-2"].complete
    assert split_body(runtime.responses["inv-2"])[1] == [b"data: fine\n\n"]
    assert runtime.responses["inv-2"].client != runtime.responses["inv-1"].client


# --- the edges: idle streams and the deadline --------------------------------------------------

FAST = StreamTiming(ping_interval_s=0.1, deadline_margin_s=1.0)
PING = b": ping\n\n"
SSE = {"Content-Type": "text/event-stream; charset=utf-8"}


def error_events(chunks: list[bytes]) -> list[dict[str, Any]]:
    found = []
    for chunk in chunks:
        lines = chunk.decode().split("\n")
        if lines[0] == "event: error":
            found.append(json.loads(lines[1].removeprefix("data: ")))
    return found


def test_an_idle_stream_gets_a_ping_comment_every_interval_and_keeps_its_chunks_in_order(
    runtime: FakeRuntime,
) -> None:
    # Given a generator that is silent for 0.45 s between its two chunks, and pings every 0.1 s
    def body() -> Iterator[bytes]:
        yield b"data: 1\n\n"
        time.sleep(0.45)
        yield b"data: 2\n\n"
        yield b"data: 3\n\n"

    runtime.invoke(api_event(), invocation_id="inv-1")

    # When the loop serves it
    serve(runtime, lambda event, context: StreamingResponse(200, SSE, body()), 1, timing=FAST)

    # Then the silence was filled with `: ping` comments, each its own HTTP chunk, ~0.1 s apart,
    # and the data chunks came in order, around them
    record = runtime.responses["inv-1"]
    _, chunks = split_body(record)
    assert chunks[0] == b"data: 1\n\n"
    assert chunks[-2:] == [b"data: 2\n\n", b"data: 3\n\n"]
    pings = chunks[1:-2]
    assert set(pings) == {PING}
    assert 2 <= len(pings) <= 5, chunks
    times = [arrived for arrived, data in record.chunks if data == PING]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(0.07 <= gap <= 0.4 for gap in gaps), gaps
    assert record.complete
    assert record.trailers == {}


def test_an_idle_body_that_is_not_an_event_stream_gets_no_ping(runtime: FakeRuntime) -> None:
    # Given a JSON body produced in two slow pieces (a comment line would corrupt it)
    def body() -> Iterator[bytes]:
        yield b'{"a": '
        time.sleep(0.35)
        yield b"1}"

    runtime.invoke(api_event(), invocation_id="inv-1")

    # When the loop serves it with a 0.1 s ping interval
    response = StreamingResponse(200, {"content-type": "application/json"}, body())
    serve(runtime, lambda event, context: response, 1, timing=FAST)

    # Then the body is exactly the JSON
    assert split_body(runtime.responses["inv-1"])[1] == [b'{"a": ', b"1}"]


def test_a_stream_that_never_idles_gets_no_ping(runtime: FakeRuntime) -> None:
    # Given a generator that yields a chunk every 0.05 s, under a 0.1 s ping interval
    def body() -> Iterator[bytes]:
        for n in range(8):
            time.sleep(0.05)
            yield f"data: {n}\n\n".encode()

    runtime.invoke(api_event(), invocation_id="inv-1")

    # When the loop serves it
    serve(runtime, lambda event, context: StreamingResponse(200, SSE, body()), 1, timing=FAST)

    # Then no ping was needed
    assert split_body(runtime.responses["inv-1"])[1] == [f"data: {n}\n\n".encode() for n in range(8)]


def test_near_the_deadline_the_stream_ends_with_a_stream_deadline_error_and_the_generator_is_closed(
    runtime: FakeRuntime,
) -> None:
    # Given a generator that yields once, then blocks 2 s for its next chunk, with the deadline
    # 3.5 s after it is handed out and a 3 s margin (the stream must end 0.5 s after that; the
    # slack in these numbers is for a loaded machine)
    closed = threading.Event()
    produced: list[bytes] = []

    def body() -> Iterator[bytes]:
        try:
            yield b"data: 1\n\n"
            time.sleep(2.0)
            for n in range(2, 100):
                produced.append(f"data: {n}\n\n".encode())
                yield produced[-1]
        finally:
            closed.set()

    runtime.invoke(api_event("req-5"), invocation_id="inv-1", deadline_in_s=3.5)
    timing = StreamTiming(ping_interval_s=10.0, deadline_margin_s=3.0)

    # When the loop serves it
    serve(runtime, lambda event, context: StreamingResponse(200, {}, body()), 1, timeout=10.0, timing=timing)

    # Then the stream ended before the deadline with an SSE error event in the error model
    record = runtime.responses["inv-1"]
    _, chunks = split_body(record)
    assert chunks[0] == b"data: 1\n\n"
    assert len(chunks) == 2, chunks
    (error,) = error_events(chunks)
    assert error["type"] == "error"
    assert error["error"] == {
        "type": "api_error",
        "code": "stream_deadline",
        "message": error["error"]["message"],
        "param": None,
        "request_id": "req-5",
    }
    assert "incomplete" in error["error"]["message"]
    ended_after = record.chunks[-1][0] - runtime.handed_out["inv-1"]
    assert 0.45 <= ended_after < 2.0, ended_after  # at the margin, before the late chunk
    # with the error trailers, so Lambda counts the invocation as failed
    assert record.trailers["Lambda-Runtime-Function-Error-Type"] == "StreamDeadlineExceeded"
    assert record.complete
    # and the generator was closed (its finally ran) without its late chunk being sent
    assert closed.is_set()
    assert produced == [b"data: 2\n\n"]


def test_a_body_still_blocked_at_the_deadline_stops_the_runtime_loop(runtime: FakeRuntime) -> None:
    # Given a generator blocked after its first chunk until the test releases it
    release = threading.Event()

    def body() -> Iterator[bytes]:
        yield b"data: 1\n\n"
        release.wait(10)
        yield b"data: late\n\n"

    runtime.invoke(api_event(), invocation_id="inv-1", deadline_in_s=1.2)
    runtime.invoke(api_event(), invocation_id="inv-2")
    try:
        # When the loop serves it: the stream ends at the margin, the body cannot be closed
        serve(
            runtime,
            lambda event, context: StreamingResponse(200, {}, body()),
            2,
            timing=StreamTiming(ping_interval_s=10.0, deadline_margin_s=1.0),
            raises=BodyStuck,
        )
    finally:
        release.set()

    # Then the client still got its error event, and the loop stopped rather than take inv-2
    # with the worker thread running
    (error,) = error_events(split_body(runtime.responses["inv-1"])[1])
    assert error["error"]["code"] == "stream_deadline"
    assert "inv-2" not in runtime.responses


def test_a_conversation_stream_cut_by_the_deadline_keeps_its_reply_as_incomplete(
    runtime: FakeRuntime,
    aws: None,
    load_handler: Any,
    sample_event: Any,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a conversation with one exchange already (the handler is warm), whose (echo) model
    # streams a word every 0.1 s (8 s in all), through the real messages_create handler, with the
    # deadline 6 s away and a 4 s margin (room for the reply's write on a loaded machine)
    api = Api(load_handler, sample_event, lambda_context, Principal("org_a", "proj_a", "key_a", ("*",)))
    conversation = api.call("conversations_create", {"title": "Deadline"}).body
    warm = api.call("messages_create", {"content": "warm up"}, path={"conversation_id": conversation["id"]})
    assert warm.status == 200, warm.body
    monkeypatch.setenv("PARLEY_ECHO_DELAY_MS", "100")
    set_settings(None)
    words = " ".join(f"word{n}" for n in range(80))
    event = sample_event("messages_create", authorizer={"principalId": "key_a", **api.principal.to_context()})
    event["body"] = json.dumps({"content": words, "stream": True})
    event["pathParameters"] = {"conversation_id": conversation["id"]}
    event["path"] = event["resource"].format(**event["pathParameters"])
    runtime.invoke(event, invocation_id="inv-1", deadline_in_s=6.0)

    # When the adapter serves it
    timing = StreamTiming(ping_interval_s=10, deadline_margin_s=4)
    serve(runtime, load_handler("messages_create"), 1, timeout=15.0, timing=timing)

    # Then the client saw start, some text, then the stream_deadline error (no done)
    _, chunks = split_body(runtime.responses["inv-1"])
    kinds = [chunk.decode().split("\n")[0] for chunk in chunks]
    assert kinds[0] == "event: start"
    assert kinds[-1] == "event: error"
    assert "event: done" not in kinds
    assert error_events(chunks)[0]["error"]["code"] == "stream_deadline"
    # and the stored reply is incomplete with the text the client received, not left pending
    sent = "".join(
        json.loads(chunk.decode().split("\n")[1].removeprefix("data: "))["text"]
        for chunk in chunks
        if chunk.startswith(b"event: text")
    )
    history = api.call("messages_list", path={"conversation_id": conversation["id"]}).body["data"]
    reply = history[0]
    assert reply["role"] == "assistant"
    assert reply["status"] == "incomplete"
    assert sent
    assert reply["content"].startswith(sent)
    assert len(reply["content"]) < len(words)


def test_the_body_is_pulled_only_as_fast_as_it_is_sent() -> None:
    # Given a body that counts how often it was advanced
    pulled: list[int] = []

    def body() -> Iterator[bytes]:
        for n in range(3):
            pulled.append(n)
            yield str(n).encode()

    puller = BodyPuller(body())

    # When one chunk is asked for
    first = puller.next(timeout=2.0)
    time.sleep(0.1)

    # Then the body advanced once, not ahead of the sender; and the next asks advance it in order
    assert pulled == [0]
    assert first is not None
    assert getattr(first, "data", None) == b"0"
    assert [getattr(puller.next(timeout=2.0), "data", None) for _ in range(2)] == [b"1", b"2"]
    puller.close(timeout=2.0)


# --- the exec wrapper, end to end --------------------------------------------------------------

HANDLER_PY = """
from parley.api.streaming import StreamingResponse


def lambda_handler(event, context):
    def body():
        yield b"data: one\\n\\n"
        yield ("data: " + context.aws_request_id + "\\n\\n").encode()

    return StreamingResponse(200, {"Content-Type": "text/event-stream"}, body())
"""


def _lambda_env(fake: FakeRuntime, task_root: Path, handler: str) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(task_root),
        "AWS_LAMBDA_RUNTIME_API": fake.address,
        "LAMBDA_TASK_ROOT": str(task_root),
        "_HANDLER": handler,
        "AWS_LAMBDA_FUNCTION_NAME": "parley-chat",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
    }


@pytest.mark.skipif(os.path.exists("/var/lang/bin/python3"), reason="the wrapper would pick the Lambda python")
def test_the_exec_wrapper_starts_the_streaming_runtime(runtime: FakeRuntime, tmp_path: Path) -> None:
    # Given a task root with a streaming handler, and the wrapper started as Lambda would
    # (with the managed runtime's command line, which it must ignore)
    (tmp_path / "handler.py").write_text(HANDLER_PY)
    runtime.invoke(api_event(), invocation_id="inv-wrapped")
    log = tmp_path / "runtime.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(WRAPPER), "/var/lang/bin/python3.13", "/var/runtime/bootstrap.py"],
            env=_lambda_env(runtime, tmp_path, "handler.lambda_handler"),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            # When the invocation is served
            runtime.wait_answered("inv-wrapped", timeout=8.0)
        except AssertionError:
            process.kill()
            process.wait()
            pytest.fail(f"no answer; runtime output:\n{log.read_text()}")
        finally:
            process.kill()
            process.wait()

    # Then it was streamed: prelude, delimiter, both chunks
    record = runtime.responses["inv-wrapped"]
    assert {k: v for k, v in record.header_map().items() if k != "host"} == STREAM_HEADERS
    prelude, chunks = split_body(record)
    assert prelude == {"statusCode": 200, "headers": {"Content-Type": "text/event-stream"}, "cookies": []}
    assert chunks == [b"data: one\n\n", b"data: inv-wrapped\n\n"]
    assert not runtime.init_errors


INIT_FAILURES = {
    "missing module": ("missing_module.lambda_handler", {}, {}, "Runtime.ImportModuleError", "missing_module"),
    "import fails inside the module": (
        "handler.lambda_handler",
        {"handler.py": "import a_dependency_not_in_the_layer\n"},
        {},
        "Runtime.ImportModuleError",
        "a_dependency_not_in_the_layer",
    ),
    "module raises while imported": (
        "handler.lambda_handler",
        {"handler.py": "import os\nTABLE = os.environ['PARLEY_TABLE_NOT_SET']\n"},
        {},
        "Runtime.ImportModuleError",
        "PARLEY_TABLE_NOT_SET",
    ),
    "module exits while imported": (
        "handler.lambda_handler",
        {"handler.py": "import sys\nsys.exit(3)\n"},
        {},
        "Runtime.ImportModuleError",
        "SystemExit",
    ),
    "syntax error": (
        "handler.lambda_handler",
        {"handler.py": "def lambda_handler(event, context)\n    return 1\n"},
        {},
        "Runtime.UserCodeSyntaxError",
        "handler",
    ),
    "no such function": (
        "handler.lambda_handler",
        {"handler.py": "def other(event, context):\n    return 1\n"},
        {},
        "Runtime.HandlerNotFound",
        "lambda_handler",
    ),
    "malformed handler name": ("handler", {}, {}, "Runtime.MalformedHandlerName", "handler"),
    "invalid stream setting": (
        "handler.lambda_handler",
        {"handler.py": HANDLER_PY},
        {"PARLEY_STREAM_PING_INTERVAL_MS": "soon"},
        "Runtime.InvalidConfiguration",
        "PARLEY_STREAM_PING_INTERVAL_MS",
    ),
}


@pytest.mark.skipif(os.path.exists("/var/lang/bin/python3"), reason="the wrapper would pick the Lambda python")
@pytest.mark.parametrize(
    ("handler", "files", "extra_env", "error_type", "mentioned"), INIT_FAILURES.values(), ids=INIT_FAILURES.keys()
)
def test_a_runtime_that_cannot_start_posts_an_init_error_and_exits_non_zero(
    runtime: FakeRuntime,
    tmp_path: Path,
    handler: str,
    files: dict[str, str],
    extra_env: dict[str, str],
    error_type: str,
    mentioned: str,
) -> None:
    # Given a task root whose handler cannot be loaded (or a bad setting), started as Lambda does
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    runtime.invoke(api_event(), invocation_id="inv-never")

    # When the exec wrapper starts the runtime
    done = subprocess.run(
        [str(WRAPPER), "/var/lang/bin/python3.13", "/var/runtime/bootstrap.py"],
        env=_lambda_env(runtime, tmp_path, handler) | extra_env,
        cwd=tmp_path,
        capture_output=True,
        timeout=8.0,
        check=False,
    )

    # Then it reported the failure on /init/error, took no invocation and exited non-zero
    assert done.returncode != 0
    assert len(runtime.init_errors) == 1, done.stderr.decode()
    posted = runtime.init_errors[0]
    assert posted.headers["Lambda-Runtime-Function-Error-Type"] == error_type
    assert posted.body["errorType"] == error_type
    assert mentioned in posted.body["errorMessage"]
    assert isinstance(posted.body["stackTrace"], list)
    assert not runtime.responses
    assert not runtime.errors


@pytest.mark.skipif(os.path.exists("/var/lang/bin/python3"), reason="the wrapper would pick the Lambda python")
def test_the_runtime_exits_when_a_body_outlives_its_invocation(runtime: FakeRuntime, tmp_path: Path) -> None:
    # Given a handler whose stream blocks for an hour after one chunk, a deadline 2 s away
    # and a 1 s margin, set through the environment
    (tmp_path / "handler.py").write_text(
        "import time\n"
        "from parley.api.streaming import StreamingResponse\n"
        "def lambda_handler(event, context):\n"
        "    def body():\n"
        "        yield b'data: 1\\n\\n'\n"
        "        time.sleep(3600)\n"
        "        yield b'data: never\\n\\n'\n"
        "    return StreamingResponse(200, {'Content-Type': 'text/event-stream'}, body())\n"
    )
    runtime.invoke(api_event(), invocation_id="inv-1", deadline_in_s=2.0)
    env = _lambda_env(runtime, tmp_path, "handler.lambda_handler") | {
        "PARLEY_STREAM_DEADLINE_MARGIN_MS": "1000",
        "PARLEY_STREAM_PING_INTERVAL_MS": "200",
    }

    # When the wrapper runs it
    done = subprocess.run([str(WRAPPER)], env=env, cwd=tmp_path, capture_output=True, timeout=8.0, check=False)

    # Then the client got the first chunk, pings and the deadline error, and the runtime exited
    # non-zero once the deadline passed with the body still running
    assert done.returncode == 1, done.stderr.decode()
    _, chunks = split_body(runtime.responses["inv-1"])
    assert chunks[0] == b"data: 1\n\n"
    assert PING in chunks
    (error,) = error_events(chunks)
    assert error["error"]["code"] == "stream_deadline"
    assert b"did not stop by its deadline" in done.stderr


def test_work_after_the_response_runs_once_it_is_sent_and_before_the_next_invocation(runtime: FakeRuntime) -> None:
    # Given a handler that answers at once and leaves work for after its response (a background
    # response's generation); the second invocation's work fails
    runtime.invoke(api_event("req-1"), invocation_id="inv-1")
    runtime.invoke(api_event("req-2"), invocation_id="inv-2")
    seen: list[tuple[str, bool, bool]] = []

    def handler(event: dict[str, Any], context: Any) -> StreamingResponse:
        request_id = event["requestContext"]["requestId"]

        def after() -> None:
            invocation = "inv-1" if request_id == "req-1" else "inv-2"
            seen.append((request_id, runtime.answered[invocation].is_set(), "inv-2" in runtime.handed_out))
            if request_id == "req-2":
                raise RuntimeError("the work after failed")

        response = StreamingResponse(200, {"Content-Type": "application/json"}, iter([b'{"status":"queued"}']))
        response.after = after
        return response

    # When the loop serves both
    serve(runtime, handler, 2)

    # Then each task ran after its response was complete, the first before the next invocation was
    # asked for; the failure was logged and the loop went on
    assert seen == [("req-1", True, False), ("req-2", True, True)]
    assert b"".join(split_body(runtime.responses["inv-1"])[1]) == b'{"status":"queued"}'
    assert "inv-2" not in runtime.errors
