"""POST /v1/chat/completions through lambda_handler, on moto, with the sample API Gateway event."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley.api.streaming import StreamingResponse
from parley.settings import set_settings

FUNCTION = "completions_create"


@pytest.fixture
def handler(load_handler: Any, aws: None) -> Any:
    return load_handler(FUNCTION)


def body_of(result: dict[str, Any]) -> Any:
    return json.loads(result["body"])


def test_given_a_valid_request_when_invoked_then_an_openai_completion(
    handler: Any, sample_event: Any, lambda_context: Any
) -> None:
    result = handler(sample_event(FUNCTION), lambda_context)
    assert result["statusCode"] == 200
    assert result["headers"]["x-request-id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    completion = body_of(result)
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == "Hello, Parley!"


def test_given_stream_true_when_invoked_then_a_streaming_response_of_sse(
    handler: Any, sample_event: Any, lambda_context: Any
) -> None:
    body = {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "one two"}]}
    result = handler(sample_event(FUNCTION, body), lambda_context)
    assert isinstance(result, StreamingResponse)
    assert result.status == 200
    assert result.headers["Content-Type"].startswith("text/event-stream")
    assert result.headers["x-request-id"]
    chunks = list(result.body)
    assert chunks[-1] == b"data: [DONE]\n\n"
    assert len(chunks) == 5  # role, "one", " two", finish, [DONE]


@pytest.mark.parametrize(
    ("raw", "status", "param"),
    [
        ("{not json", 400, None),
        ("", 400, None),
        ("[1, 2]", 400, None),
        ('"text"', 400, None),
        ('{"model": "echo"}', 400, "messages"),
        ('{"model": "echo", "messages": []}', 400, "messages"),
        ('{"model": "echo", "messages": [{"role": "wizard", "content": "x"}]}', 400, "messages[0].role"),
        ('{"model": "echo", "messages": [{"role": "user", "content": 5}]}', 400, "messages[0].content"),
        ('{"model": "echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}', 400, "max_tokens"),
        ('{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404, "model"),
        ('{"model": "nope", "stream": true, "messages": [{"role": "user", "content": "x"}]}', 404, "model"),
    ],
)
def test_given_bad_input_when_invoked_then_a_4xx_in_the_error_model(
    handler: Any, sample_event: Any, lambda_context: Any, raw: str, status: int, param: str | None
) -> None:
    result = handler(sample_event(FUNCTION, raw_body=raw), lambda_context)
    assert not isinstance(result, StreamingResponse)
    assert result["statusCode"] == status
    error = body_of(result)["error"]
    assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    assert error["param"] == param
    assert error["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert error["message"]


def test_given_an_oversize_body_when_invoked_then_413_before_parsing(
    handler: Any, sample_event: Any, lambda_context: Any
) -> None:
    from parley.settings import Settings

    set_settings(Settings(max_body_bytes=1000))
    big = {"model": "echo", "messages": [{"role": "user", "content": "x" * 2000}]}
    result = handler(sample_event(FUNCTION, big), lambda_context)
    assert result["statusCode"] == 413
    assert body_of(result)["error"]["code"] == "request_too_large"


def test_given_a_key_without_the_permission_when_invoked_then_403(
    handler: Any, sample_event: Any, lambda_context: Any
) -> None:
    context = {
        "principalId": "key_1",
        "org_id": "o",
        "project_id": "p",
        "key_id": "key_1",
        "permissions": json.dumps(["conversations:*"]),
    }
    result = handler(sample_event(FUNCTION, raw_body="{not even json", authorizer=context), lambda_context)
    assert result["statusCode"] == 403  # the permission is checked before the body is parsed
    assert body_of(result)["error"]["type"] == "permission_error"


def test_given_no_authorizer_context_when_invoked_then_401(
    handler: Any, sample_event: Any, lambda_context: Any
) -> None:
    result = handler(sample_event(FUNCTION, authorizer=None), lambda_context)
    assert result["statusCode"] == 401
    assert body_of(result)["error"]["type"] == "authentication_error"


def test_given_an_unexpected_failure_when_invoked_then_500_without_internals(
    handler: Any, sample_event: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parley.services import completions

    def explode(*_: object) -> None:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(completions, "create", explode)
    result = handler(sample_event(FUNCTION), lambda_context)
    assert result["statusCode"] == 500
    assert "hunter2" not in result["body"]
    assert body_of(result)["error"]["type"] == "api_error"
