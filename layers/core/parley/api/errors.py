"""The error model (DESIGN.md section 3): OpenAI's shape, so OpenAI clients understand it.

    {"error": {"type", "code", "message", "param", "request_id"}}

Errors raised in Parley's code are rendered by the resolver's exception handlers
(parley.api.app). Errors API Gateway itself answers (no key, bad key, unknown route, too
large, throttled) are rendered by gateway responses built from GATEWAY_ERRORS, which the
local server uses too, so both answer the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from parley.api import ratelimits
from parley.domain.errors import InvalidRequest, NotFound, ParleyError, UnsupportedMediaType
from parley.domain.keys import Quota

INTERNAL_MESSAGE = "Internal error. Retry later; if it persists, report the request_id."


class ErrorDetail(BaseModel):
    """The error model's inner object (OpenAI's shape)."""

    type: str = Field(description="invalid_request_error, authentication_error, permission_error, ...")
    code: str = Field(description="A stable, machine-readable code, e.g. conversation_archived.")
    message: str
    param: str | None = Field(description="The offending field for validation errors, else null.")
    request_id: str | None = Field(description="The request id (also in the x-request-id header).")


class ErrorResponse(BaseModel):
    """Every error response's body."""

    error: ErrorDetail


def error_body(
    type_: str, code: str, message: str, *, param: str | None = None, request_id: str | None = None
) -> dict[str, Any]:
    return {"error": {"type": type_, "code": code, "message": message, "param": param, "request_id": request_id}}


def body_for(error: ParleyError, request_id: str | None) -> dict[str, Any]:
    return error_body(error.type, error.code, error.message, param=error.param, request_id=request_id)


def as_parley_error(error: BaseException) -> ParleyError:
    """Any exception as the error the client sees; unexpected ones become a bare 500 (no internals)."""
    # Imported here: Powertools' resolver modules are not needed by every caller of this module.
    from aws_lambda_powertools.event_handler.exceptions import NotFoundError  # noqa: PLC0415
    from aws_lambda_powertools.event_handler.openapi.exceptions import (  # noqa: PLC0415
        RequestUnsupportedContentType,
        RequestValidationError,
    )

    if isinstance(error, ParleyError):
        return error
    if isinstance(error, RequestUnsupportedContentType):  # bodies.normalise refuses these first
        return UnsupportedMediaType("Request bodies are JSON; send Content-Type: application/json.")
    if isinstance(error, RequestValidationError):
        message, param = describe_validation_error(list(error.errors()))
        return InvalidRequest(message, param=param)
    if isinstance(error, NotFoundError):
        return NotFound("No route matches this method and path.", code="route_not_found")
    return ParleyError(INTERNAL_MESSAGE)


def error_response(error: ParleyError, request_id: str | None) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the JSON error response for an error."""
    headers = {"Content-Type": "application/json", "x-request-id": request_id or "", **error.headers}
    quota = getattr(error, "quota", None)
    if isinstance(quota, Quota):
        headers.update(ratelimits.headers(quota))
    return error.status, headers, json.dumps(body_for(error, request_id)).encode()


def describe_validation_error(errors: list[Any]) -> tuple[str, str | None]:
    """A one-line message and the offending field (OpenAI's `param`) for a validation failure."""
    if not errors:
        return "The request is invalid.", None
    first = errors[0]
    kind = first.get("type", "")
    loc = [part for part in first.get("loc", ()) if not _is_location_tag(part)]
    if kind == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return f"The request body is not valid JSON ({detail}).", None
    if kind == "model_attributes_type" or (not loc and kind in ("missing", "dict_type", "model_type")):
        return "The request body must be a JSON object.", None
    param = ""
    for part in loc:
        param += f"[{part}]" if isinstance(part, int) else (f".{part}" if param else str(part))
    msg = "Unrecognized request argument" if kind == "extra_forbidden" else first.get("msg", "is invalid")
    return (f"{param}: {msg}" if param else msg), (param or None)


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none", "body", "query", "path", "header"})


def _is_location_tag(part: object) -> bool:
    """Parts of a pydantic error location that are not field names: the request section, and the
    union member a value was tried against (`str`, `list[...]`, `function-after[...]`)."""
    return isinstance(part, str) and (part in _TYPE_TAGS or "[" in part or "(" in part)


@dataclass(frozen=True)
class GatewayError:
    """An error API Gateway answers before (or instead of) a function."""

    response_type: str  # API Gateway's GatewayResponseType
    status: int
    type: str
    code: str
    message: str

    def template(self) -> str:
        """The gateway response's mapping template ($context.requestId filled by API Gateway)."""
        body = error_body(self.type, self.code, self.message, request_id="$context.requestId")
        return json.dumps(body, separators=(",", ":"))

    def body(self, request_id: str) -> dict[str, Any]:
        return error_body(self.type, self.code, self.message, request_id=request_id)


GATEWAY_ERRORS: tuple[GatewayError, ...] = (
    GatewayError(
        "UNAUTHORIZED",
        401,
        "authentication_error",
        "invalid_api_key",
        "Missing or invalid API key. Send 'Authorization: Bearer <api key>'.",
    ),
    GatewayError(
        "ACCESS_DENIED",
        403,
        "permission_error",
        "permission_denied",
        "This API key is not allowed to call this route.",
    ),
    GatewayError(
        "MISSING_AUTHENTICATION_TOKEN",
        404,
        "not_found_error",
        "route_not_found",
        "No route matches this method and path.",
    ),
    GatewayError(
        "REQUEST_TOO_LARGE",
        413,
        "invalid_request_error",
        "request_too_large",
        "The request body is larger than API Gateway accepts (10 MB).",
    ),
    GatewayError(
        "THROTTLED",
        429,
        "rate_limit_error",
        "rate_limited",
        "Too many requests. Retry after a short wait.",
    ),
    GatewayError(
        "INTEGRATION_TIMEOUT",
        504,
        "api_error",
        "timeout",
        "The request took too long to complete.",
    ),
    GatewayError(
        "DEFAULT_4XX",
        400,
        "invalid_request_error",
        "bad_request",
        "The request could not be processed.",
    ),
    GatewayError(
        "DEFAULT_5XX",
        500,
        "api_error",
        "internal_error",
        "Internal error. Retry later; if it persists, report the request_id.",
    ),
)


def gateway_error(response_type: str) -> GatewayError:
    for error in GATEWAY_ERRORS:
        if error.response_type == response_type:
            return error
    raise KeyError(response_type)
