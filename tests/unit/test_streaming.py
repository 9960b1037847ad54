"""The streaming driver logic shared by the Lambda adapter and the local server."""

from __future__ import annotations

import json
from collections.abc import Iterator

from parley.api.streaming import StreamingResponse, error_event, from_proxy_result, prime
from parley.domain.errors import InvalidRequest, ProviderError


def test_prime_turns_an_error_before_the_first_byte_into_a_status() -> None:
    def body() -> Iterator[bytes]:
        raise InvalidRequest("no such model", param="model")
        yield b""

    primed = prime(StreamingResponse(200, {"Content-Type": "text/event-stream"}, body()), "req-1")
    assert primed.status == 400
    assert json.loads(b"".join(primed.body))["error"]["param"] == "model"


def test_prime_keeps_the_first_chunk_and_closing_reaches_the_handlers_generator() -> None:
    closed: list[bool] = []

    def body() -> Iterator[bytes]:
        try:
            yield b"one"
            yield b"two"
            yield b"three"
        finally:
            closed.append(True)

    primed = prime(StreamingResponse(200, {}, body()), "r")
    assert next(primed.body) == b"one"
    primed.body.close()  # type: ignore[attr-defined]
    assert closed == [True]


def test_error_event_is_an_sse_error_in_the_error_model() -> None:
    raw = error_event(ProviderError("upstream closed"), "req-2").decode()
    name, data = raw.strip().split("\n")
    assert name == "event: error"
    payload = json.loads(data.removeprefix("data: "))
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "provider_error"
    assert payload["error"]["request_id"] == "req-2"
    hidden = json.loads(error_event(RuntimeError("internal"), None).decode().split("data: ")[1])
    assert "internal" not in hidden["error"]["message"]


def test_proxy_results_keep_cookies_and_base64_bodies() -> None:
    result = from_proxy_result(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "application/octet-stream"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "X-Many": ["x", "y"]},
            "body": "aGk=",
            "isBase64Encoded": True,
        }
    )
    assert (result.status, result.cookies, result.headers["X-Many"]) == (201, ["a=1", "b=2"], "x, y")
    assert b"".join(result.body) == b"hi"
