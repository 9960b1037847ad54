"""The API edge under hostile input, through the handlers: media types, encodings, nesting,
forged cursors; and what a 500 logs (one structured ERROR line, no traceback)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from parley.api import idempotency
from parley.api.cursors import encode_cursor
from parley.api.observability import logger
from parley.api.streaming import StreamingResponse, error_event, from_proxy_result, prime
from parley.domain.principal import Principal
from parley.services import conversations, registry

OWNER = Principal("org_a", "proj_a", "key_a", ("*",))


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Every record Parley's Powertools logger emits during the test."""
    handler = Records()
    target = logging.getLogger(logger().name)
    target.addHandler(handler)
    yield handler.records
    target.removeHandler(handler)


@pytest.fixture
def call(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Any:
    def invoke(
        function: str,
        raw_body: str | None,
        content_type: str | None = "application/json",
        *,
        b64: bool = False,
        query: dict[str, str] | None = None,
        path: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        event = sample_event(function, authorizer={"principalId": OWNER.key_id, **OWNER.to_context()})
        event["body"], event["isBase64Encoded"] = raw_body, b64
        headers = {"Content-Type": content_type} if content_type is not None else {}
        event["headers"], event["multiValueHeaders"] = headers, {k: [v] for k, v in headers.items()}
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
        if path:
            event["pathParameters"] = path
            event["path"] = event["resource"].format(**path)
        result = load_handler(function)(event, lambda_context)
        assert result["headers"]["Content-Type"].startswith("application/json")
        return result["statusCode"], json.loads(result["body"])

    return invoke


def assert_error(body: Any, code: str) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "code", "message", "param", "request_id"}
    assert body["error"]["code"] == code, body


def test_text_plain_json_bodies_are_accepted(call: Any) -> None:
    status, body = call("conversations_create", json.dumps({"title": "from fetch"}), "text/plain;charset=UTF-8")
    assert status == 201
    assert body["title"] == "from fetch"


@pytest.mark.parametrize("content_type", ["application/xml", "multipart/form-data", "text/csv"])
def test_non_json_media_types_are_415(call: Any, content_type: str) -> None:
    status, body = call("conversations_create", "<title>x</title>", content_type)
    assert status == 415
    assert_error(body, "unsupported_media_type")


def test_bodies_that_are_not_utf8_are_400(call: Any) -> None:
    raw = base64.b64encode(b'{"title": "\xff"}').decode()
    status, body = call("conversations_create", raw, b64=True)
    assert status == 400
    assert_error(body, "invalid_encoding")


def test_base64_json_bodies_are_read(call: Any) -> None:
    status, body = call("conversations_create", base64.b64encode(b'{"title": "b64"}').decode(), b64=True)
    assert (status, body["title"]) == (201, "b64")


@pytest.mark.parametrize("text", ["[" * 10_000 + "]" * 10_000, '{"metadata":' * 5_000 + "{}" + "}" * 5_000])
def test_deep_nesting_is_400(call: Any, text: str) -> None:
    status, body = call("conversations_create", text)
    assert status == 400
    assert_error(body, "json_too_deep")


@pytest.mark.parametrize("text", ['{"title": NaN}', '{"title": "x", "metadata": {"n": 1e999}}', "9" * 5000])
def test_non_portable_numbers_are_400_invalid_json(call: Any, text: str) -> None:
    status, body = call("conversations_create", text)
    assert status == 400
    assert "not valid JSON" in body["error"]["message"]


def test_a_forged_cursor_with_a_valid_signature_is_400_not_500(call: Any) -> None:
    status, created = call("conversations_create", json.dumps({"title": "t"}))
    assert status == 201
    forged = encode_cursor("messages", {"conversation_id": created["id"], "order": "desc", "seq": "x"})
    status, body = call("messages_list", None, None, query={"cursor": forged}, path={"conversation_id": created["id"]})
    assert status == 400
    assert_error(body, "invalid_cursor")


def broken(error: Exception) -> Any:
    def raise_it(*args: Any, **kwargs: Any) -> Any:
        raise error

    return raise_it


def error_lines(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.levelno >= logging.ERROR]


def test_a_500_logs_one_structured_error_line_without_a_traceback(
    call: Any, records: list[logging.LogRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conversations, "create", broken(KeyError("internal detail")))
    status, body = call("conversations_create", json.dumps({"title": "t"}))
    assert status == 500
    assert_error(body, "internal_error")
    assert "internal detail" not in json.dumps(body)
    errors = error_lines(records)
    assert len(errors) == 1, [r.getMessage() for r in records]
    record = errors[0]
    assert record.exc_info is None
    assert record.__dict__["request_id"] == body["error"]["request_id"]
    assert record.__dict__["exception_type"] == "builtins.KeyError"
    assert "test_hostile_edge.py" in record.__dict__["exception_location"]
    assert "in raise_it" in record.__dict__["exception_location"]
    line = logger().registered_formatter.format(record)
    assert "\n" not in line and "Traceback" not in line
    assert json.loads(line)["level"] == "ERROR"
    assert not [r for r in records if r.exc_info]  # no traceback at any level


def test_a_500_outside_the_resolver_is_the_error_model_and_one_error_line(
    call: Any, records: list[logging.LogRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "key_of", broken(RuntimeError("store down")))
    status, body = call("conversations_create", json.dumps({"title": "t"}))
    assert status == 500
    assert_error(body, "internal_error")
    assert [r.__dict__["exception_type"] for r in error_lines(records)] == ["builtins.RuntimeError"]


def test_client_errors_log_no_error_line(call: Any, records: list[logging.LogRecord]) -> None:
    assert call("conversations_create", "<x/>", "application/xml")[0] == 415
    assert call("conversations_create", "{")[0] == 400
    assert not error_lines(records)


def failing_stream(monkeypatch: pytest.MonkeyPatch, *, after: int) -> None:
    """The echo model's stream raises an unexpected error after `after` events."""
    original = registry.EchoProvider.stream

    def stream(self: Any, request: Any) -> Any:
        for count, item in enumerate(original(self, request)):
            if count == after:
                raise RuntimeError("provider adapter bug")
            yield item

    monkeypatch.setattr(registry.EchoProvider, "stream", stream)


@pytest.mark.parametrize("after", [0, 2])
def test_a_streamed_500_logs_one_structured_error_line(
    aws: None,
    load_handler: Any,
    sample_event: Any,
    lambda_context: Any,
    records: list[logging.LogRecord],
    monkeypatch: pytest.MonkeyPatch,
    after: int,
) -> None:
    failing_stream(monkeypatch, after=after)
    event = sample_event(
        "completions_create",
        {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "one two three four"}]},
        authorizer={"principalId": OWNER.key_id, **OWNER.to_context()},
    )
    # What both drivers (the Lambda adapter, the local server) do with a streamed result.
    result = load_handler("completions_create")(event, lambda_context)
    primed = prime(result, "req-stream") if isinstance(result, StreamingResponse) else from_proxy_result(result)
    chunks = []
    try:
        chunks.extend(primed.body)
    except RuntimeError as exc:
        chunks.append(error_event(exc, "req-stream"))
    text = b"".join(chunks).decode()
    assert "internal_error" in text and "provider adapter bug" not in text
    assert primed.status == (500 if after == 0 else 200)
    errors = error_lines(records)
    assert [r.__dict__["exception_type"] for r in errors] == ["builtins.RuntimeError"]
    assert errors[0].exc_info is None
    assert errors[0].__dict__["request_id"] in ("req-stream", event["requestContext"]["requestId"])
    assert "in stream" in errors[0].__dict__["exception_location"]
