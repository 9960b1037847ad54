from __future__ import annotations

import json

import pytest

from parley.api.errors import GATEWAY_ERRORS, as_parley_error, describe_validation_error, error_response
from parley.domain.errors import InvalidRequest, ParleyError, RateLimited


@pytest.mark.parametrize(
    ("errors", "message", "param"),
    [
        ([{"type": "missing", "loc": ("body", "model"), "msg": "Field required"}], "model: Field required", "model"),
        (
            [{"type": "literal_error", "loc": ("body", "messages", 0, "role"), "msg": "Input should be 'user'"}],
            "messages[0].role: Input should be 'user'",
            "messages[0].role",
        ),
        (
            [{"type": "extra_forbidden", "loc": ("body", "foo"), "msg": "x"}],
            "foo: Unrecognized request argument",
            "foo",
        ),
        ([{"type": "json_invalid", "loc": ("body", 3), "ctx": {"error": "Expecting value"}}], None, None),
        (
            [{"type": "model_attributes_type", "loc": ("body",), "msg": "x"}],
            "The request body must be a JSON object.",
            None,
        ),
        ([{"type": "int_parsing", "loc": ("query", "limit"), "msg": "bad"}], "limit: bad", "limit"),
    ],
)
def test_validation_errors_name_the_field(errors: list[dict], message: str | None, param: str | None) -> None:
    got_message, got_param = describe_validation_error(errors)
    assert got_param == param
    if message is None:
        assert got_message.startswith("The request body is not valid JSON (Expecting value)")
    else:
        assert got_message == message


def test_unexpected_errors_hide_their_internals() -> None:
    error = as_parley_error(KeyError("secret internal detail"))
    status, headers, body = error_response(error, "req-1")
    assert status == 500
    assert "secret internal detail" not in body.decode()
    assert json.loads(body) == {
        "error": {
            "type": "api_error",
            "code": "internal_error",
            "message": error.message,
            "param": None,
            "request_id": "req-1",
        }
    }
    assert headers["x-request-id"] == "req-1"


def test_domain_errors_keep_status_code_and_headers() -> None:
    status, headers, body = error_response(RateLimited("slow down", retry_after=7), "r")
    assert status == 429
    assert headers["Retry-After"] == "7"
    assert json.loads(body)["error"]["type"] == "rate_limit_error"
    invalid = as_parley_error(InvalidRequest("bad", param="model"))
    assert (invalid.status, invalid.param) == (400, "model")
    assert isinstance(invalid, ParleyError)


def test_gateway_templates_are_json_in_the_error_model() -> None:
    for gateway in GATEWAY_ERRORS:
        body = json.loads(gateway.template())
        assert set(body["error"]) == {"type", "code", "message", "param", "request_id"}
        assert body["error"]["request_id"] == "$context.requestId"
        assert 400 <= gateway.status < 600


def test_powertools_unsupported_content_type_is_a_415_not_a_500() -> None:
    from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType

    error = as_parley_error(RequestUnsupportedContentType("Unsupported content type", errors=[]))
    assert (error.status, error.code) == (415, "unsupported_media_type")
