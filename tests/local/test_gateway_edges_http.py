"""API Gateway's edges on the local server: its own 400/414/431 in the error model, a
Content-Length never trusted, the 29 s limit of buffered routes (shortened here), CORS
preflight, case-insensitive header names, and one access-log line per request."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.local.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.local
SLOW_ROUTES = Path(__file__).parent / "slow_routes" / "routes.py"


@pytest.fixture(scope="module")
def slow() -> Iterator[Server]:
    """A server on the slow route table, with 1 s gateway and body timeouts and one allowed origin."""
    running = start_server(
        "--routes",
        str(SLOW_ROUTES),
        "--buffered-timeout",
        "1",
        "--stream-timeout",
        "2",
        "--body-timeout",
        "1",
        "--cors-origins",
        "https://app.example",
    )
    yield running
    stop_server(running)


def raw(server: Server, request: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; the status, headers and body of the answer."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(request)
        data = b""
        while True:
            part = connection.recv(65536)
            if not part:
                break
            data += part
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")), None
            )
            if length is not None and len(body) >= length:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def assert_error_model(status: int, body: bytes, want_status: int, code: str | None = None) -> None:
    assert status == want_status, body
    error = json.loads(body)["error"]
    assert set(error) == {"type", "code", "message", "param", "request_id"}
    assert error["request_id"]
    if code:
        assert error["code"] == code


@pytest.mark.parametrize("length", [b"-5", b"abc", b"1e3", b"5, 6"])
def test_a_bad_content_length_is_400(server: Server, length: bytes) -> None:
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n{}"
    status, _, body = raw(server, request)
    assert_error_model(status, body, 400, "bad_request")


def test_a_body_shorter_than_its_content_length_is_400_not_a_hung_thread(slow: Server) -> None:
    started = time.monotonic()
    status, _, body = raw(slow, b"POST /v1/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
    assert_error_model(status, body, 400, "bad_request")
    assert "did not arrive" in json.loads(body)["error"]["message"]
    assert time.monotonic() - started < 5


def test_the_servers_own_errors_are_in_the_error_model(server: Server) -> None:
    status, _, body = raw(server, b"GET /v1/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_error_model(status, body, 414, "uri_too_long")
    status, _, body = raw(server, b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 11000 + b"\r\n\r\n")
    assert_error_model(status, body, 431, "headers_too_large")


@pytest.mark.parametrize("method", [b"TRACE", b"QUERY", b"BREW", b"PUT"])
def test_a_method_no_route_has_is_404_not_a_5xx(server: Server, method: bytes) -> None:
    # schemathesis found TRACE and QUERY answered 501 (a 5xx for a client's request); API Gateway answers 404
    status, _, body = raw(server, method + b" /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert_error_model(status, body, 404, "route_not_found")


def test_a_buffered_route_past_the_gateway_timeout_answers_504_and_the_server_goes_on(slow: Server) -> None:
    started = time.monotonic()
    late = httpx.get(f"{slow.url}/v1/slow", params={"seconds": "5"}, timeout=30)
    assert late.status_code == 504
    assert late.json()["error"]["code"] == "timeout"
    assert time.monotonic() - started < 4
    assert httpx.get(f"{slow.url}/v1/slow", params={"seconds": "0"}, timeout=30).json() == {"slept": 0.0}


def test_a_stream_may_outlast_the_buffered_limit_until_its_own_deadline(slow: Server) -> None:
    with httpx.stream("GET", f"{slow.url}/v1/slow-stream", params={"chunks": "4", "every": "0.4"}, timeout=30) as ok:
        assert ok.status_code == 200
        assert [line for line in ok.iter_lines() if line] == [f"data: {i}" for i in range(4)]  # 1.6 s > 1 s
    started = time.monotonic()
    with httpx.stream("GET", f"{slow.url}/v1/slow-stream", params={"chunks": "20", "every": "0.3"}, timeout=30) as cut:
        received = [line for line in cut.iter_lines() if line]
    assert 3 <= len(received) < 20  # cut at the 2 s stream deadline
    assert time.monotonic() - started < 5
    assert httpx.get(f"{slow.url}/v1/slow", params={"seconds": "0"}, timeout=30).status_code == 200


def test_cors_preflight_comes_from_the_configuration(server: Server, slow: Server) -> None:
    ask = {"Origin": "https://anywhere.example", "Access-Control-Request-Method": "POST"}
    preflight = httpx.options(f"{server.url}/v1/chat/completions", headers=ask, timeout=10)
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"  # any origin by default locally
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()
    assert httpx.options(f"{server.url}/v1/nowhere", headers=ask, timeout=10).status_code == 404
    health = httpx.get(f"{server.url}/v1/health", headers={"Origin": "https://anywhere.example"}, timeout=10)
    assert health.headers["access-control-allow-origin"] == "*"

    allowed = httpx.options(f"{slow.url}/v1/slow", headers={**ask, "Origin": "https://app.example"}, timeout=10)
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert allowed.headers["vary"] == "Origin"
    refused = httpx.options(f"{slow.url}/v1/slow", headers=ask, timeout=10)
    assert "access-control-allow-origin" not in refused.headers


def test_header_names_are_case_insensitive(server: Server) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "case"}]}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        first = http.post(
            "/v1/chat/completions",
            json=body,
            headers={"AUTHORIZATION": f"Bearer {server.key}", "idempotency-KEY": "k-1"},
        )
        again = http.post(
            "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {server.key}", "IDEMPOTENCY-key": "k-1"},
        )
    assert first.status_code == again.status_code == 200
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == first.json()["id"]


def test_one_access_log_line_per_request_with_cold_or_warm(slow: Server) -> None:
    request_ids = []
    for _ in range(2):
        response = httpx.get(f"{slow.url}/v1/slow", params={"seconds": "0"}, timeout=30)
        request_ids.append(response.headers["x-amzn-requestid"])
    lines = [slow.wait_for_line(f"rid={rid}") for rid in request_ids]
    for line in lines:
        assert " parley.access GET /v1/slow 200 " in line
        assert "ms " in line
        assert " warm " in line or " cold(init " in line
    assert slow.lines("GET /v1/slow 504")  # the timed-out call was logged too
