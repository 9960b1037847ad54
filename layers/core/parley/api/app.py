"""The resolver factory and the Lambda handler wrapper every function uses.

    app = make_app()

    @app.post("/v1/conversations/<conversation_id>/archive")
    @requires("conversations:ArchiveConversation")
    def archive(conversation_id: str) -> Conversation:
        return conversations.archive(principal(app), conversation_id)

    lambda_handler = build_handler(app)

`make_app` gives a Powertools REST resolver with validation on and the exception handlers
that render the error model. `build_handler` checks the body size and the route's
permission before anything is parsed, then the body itself (media type, encoding, nesting:
parley.api.bodies), adds the request id, sets up logging and metrics on first use, and turns
a route that called `stream(...)` into a `StreamingResponse` for the runtime adapter or the
local server to drive.

A 500 is an alarm: each one logs exactly one structured ERROR line (request id, exception
type and where it was raised; no traceback), and the client gets the bare error model.

Every log line of an invocation is JSON with its `request_id`, `route` ("POST /v1/...") and
`project_id` (the caller's; absent on public routes), and each request ends with one "request"
line that adds its `outcome` (succeeded, rejected: 4xx, failed: 5xx), `status` and `latency_ms`
(after the body drained, for a stream). No line holds a request's body or headers (so no
message content and no API key): the event is never logged, unless the stage sets
PARLEY_LOG_CONTENT, which logs the request body (never the headers) for debugging.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths

from parley.api import bodies, idempotency
from parley.api.cors import CorsConfig
from parley.api.errors import as_parley_error, error_response
from parley.api.observability import log_internal_error, logger, metrics
from parley.api.streaming import StreamingResponse, from_proxy_result
from parley.domain.clock import iso
from parley.domain.errors import AuthenticationFailed, ParleyError, PayloadTooLarge
from parley.domain.principal import Principal
from parley.settings import get_settings

F = TypeVar("F", bound=Callable[..., Any])
_PERMISSION = "__parley_permission__"
_OWN_IDEMPOTENCY = "__parley_own_idempotency__"
_stream: ContextVar[StreamingResponse | None] = ContextVar("parley_stream", default=None)
_after: ContextVar[Callable[[], None] | None] = ContextVar("parley_after", default=None)


def after_response(task: Callable[[], None]) -> None:
    """Run `task` once the current request's response is sent, in the same invocation (a
    background response's generation; see parley.api.streaming). Only streaming routes' functions
    run on a driver that does this (the Lambda adapter, the local server's environments)."""
    _after.set(task)


def requires(permission: str) -> Callable[[F], F]:
    """Declare the permission a route needs (checked before the body is parsed)."""

    def mark(func: F) -> F:
        setattr(func, _PERMISSION, permission)
        return func

    return mark


def idempotent_in_service(func: F) -> F:
    """Declare a route whose service makes Idempotency-Key a property of what it stores (sends):
    the HTTP-level response store is not used; the route reads the key with `idempotency_key`."""
    setattr(func, _OWN_IDEMPOTENCY, True)
    return func


def idempotency_key(app: APIGatewayRestResolver) -> str | None:
    """The current request's Idempotency-Key (already validated by build_handler)."""
    return idempotency.key_of(app.current_event.raw_event)


def public(func: F) -> F:
    """Declare a route that needs no API key."""
    setattr(func, _PERMISSION, None)
    return func


@dataclass(frozen=True)
class DeclaredRoute:
    method: str
    rule: str  # Powertools form: /v1/things/<thing_id>
    permission: str | None
    own_idempotency: bool = False
    name: str = ""  # the Python function: the operation's operationId in the OpenAPI document


class ParleyResolver(APIGatewayRestResolver):
    """Powertools' REST resolver that also records each route's declared permission."""

    def __init__(self) -> None:
        # A handler whose return value does not match its declared model is a bug (500), not a 400/422.
        super().__init__(
            enable_validation=True,
            json_body_deserializer=bodies.loads,
            response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR,
        )
        self.declared: list[DeclaredRoute] = []

    def route(self, rule: str, method: Any, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().route(rule, method, *args, **kwargs)

        def decorator(func: F) -> F:
            if not hasattr(func, _PERMISSION):
                raise TypeError(f"route {rule}: declare @requires('<resource>:<Action>') or @public")
            methods = (method,) if isinstance(method, str) else tuple(method)
            for m in methods:
                own = bool(getattr(func, _OWN_IDEMPOTENCY, False))
                self.declared.append(DeclaredRoute(m.upper(), rule, getattr(func, _PERMISSION), own, func.__name__))
            return register(func)

        return decorator

    def declared_for(self, method: str, resource: str) -> DeclaredRoute | None:
        """The route declared for an API Gateway method and resource template."""
        rule = resource.replace("{", "<").replace("}", ">")
        return next((d for d in self.declared if d.method == method and d.rule == rule), None)

    def permission_for(self, method: str, resource: str) -> tuple[bool, str | None]:
        """(found, permission) for an API Gateway method and resource template."""
        declared = self.declared_for(method, resource)
        return (True, declared.permission) if declared is not None else (False, None)


def make_app() -> ParleyResolver:
    app = ParleyResolver()

    def render(error: Exception) -> Response[str]:
        request_id = app.current_event.request_context.request_id
        parley_error = as_parley_error(error)
        if parley_error.status == 500:
            log_internal_error(error, request_id)
        status, headers, body = error_response(parley_error, request_id)
        return Response(status, headers=headers, body=body.decode())

    app.exception_handler([ParleyError, RequestValidationError, NotFoundError, Exception])(render)
    return app


def principal(app: APIGatewayRestResolver) -> Principal:
    """The caller of the current request, from the authorizer's context."""
    raw = app.current_event.raw_event.get("requestContext", {}).get("authorizer")
    return Principal.from_context(raw)


def stream(body: Iterator[bytes], *, status: int = 200, headers: Mapping[str, str] | None = None) -> Response[str]:
    """Answer the current request with a stream of chunks (SSE); see StreamingResponse."""
    _stream.set(StreamingResponse(status, dict(headers or {}), body))
    return Response(status, headers=dict(headers or {}), body="")


Handler = Callable[[dict[str, Any], Any], "dict[str, Any] | StreamingResponse"]


def build_handler(app: ParleyResolver) -> Handler:
    """The Lambda entry point for an app: same logging, metrics and checks everywhere."""
    instrumented: Handler | None = None

    def invoke(event: dict[str, Any], context: Any) -> dict[str, Any] | StreamingResponse:
        started = time.monotonic()
        request_id = str((event.get("requestContext") or {}).get("requestId") or "")
        _log_keys(event, request_id)
        result = _with_cors(answer(event, context, request_id), event)
        if isinstance(result, StreamingResponse):  # its `after` (a background task) is kept
            return replace(result, body=_then_log(result.body, result.status, started))
        _log_outcome(int(result.get("statusCode", 500)), started)
        return result

    def answer(event: dict[str, Any], context: Any, request_id: str) -> dict[str, Any] | StreamingResponse:
        try:
            _precheck(app, event)
            bodies.normalise(event)
        except ParleyError as error:
            return _error_dict(error, request_id)
        try:
            key = idempotency.key_of(event)
            declared = app.declared_for(str(event.get("httpMethod", "")), str(event.get("resource", "")))
            if key is None or (declared is not None and declared.own_idempotency):
                return _resolve(app, event, context, request_id)
            caller = Principal.from_context((event.get("requestContext") or {}).get("authorizer"))
            return idempotency.run(event, key, caller, lambda: _resolve(app, event, context, request_id))
        except ParleyError as error:  # a malformed key, a reused key, a request still in progress
            if error.status == 500:
                log_internal_error(error, request_id)
            return _error_dict(error, request_id)
        except Exception as error:  # noqa: BLE001 - a bug outside the resolver: answered as a logged 500
            log_internal_error(error, request_id)
            return _error_dict(as_parley_error(error), request_id)

    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any] | StreamingResponse:
        nonlocal instrumented
        if instrumented is None:
            # log_event stays off whatever POWERTOOLS_LOGGER_LOG_EVENT says: the event holds the
            # Authorization header and the body; clear_state drops the last invocation's keys.
            instrumented = logger().inject_lambda_context(
                invoke, correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
            )
        return instrumented(event, context)

    return lambda_handler


def _resolve(
    app: ParleyResolver, event: dict[str, Any], context: Any, request_id: str
) -> dict[str, Any] | StreamingResponse:
    """The resolver's answer with Parley's headers; a streamed (or after-task) answer as a StreamingResponse."""
    token, after_token = _stream.set(None), _after.set(None)
    try:
        result = app.resolve(event, context)
        streamed, after = _stream.get(), _after.get()
    finally:
        _stream.reset(token)
        _after.reset(after_token)
    headers = {**(result.get("headers") or {}), "x-request-id": request_id}
    cookies: list[str] = []
    for name, values in (result.pop("multiValueHeaders", None) or {}).items():
        if name.lower() == "set-cookie":
            cookies.extend(values)
        elif values:
            headers[name] = ", ".join(values)
    result["headers"] = headers
    if cookies:
        result["multiValueHeaders"] = {"Set-Cookie": cookies}
    if streamed is not None:
        return StreamingResponse(
            result["statusCode"], {**headers, **streamed.headers}, _then_flush(streamed.body), cookies, after
        )
    _flush_metrics()
    if after is not None:  # answered as a (one chunk) stream, so the driver runs `after` once it is sent
        answered = from_proxy_result(result)
        answered.after = after
        return answered
    return result


def _with_cors(
    result: dict[str, Any] | StreamingResponse, event: Mapping[str, Any]
) -> dict[str, Any] | StreamingResponse:
    """A browser's actual request (not the preflight, which API Gateway answers) gets its CORS
    headers here, on every answer of the function, streamed or not, errors too: API Gateway's
    proxy integrations pass the function's headers and add none of their own."""
    origins = get_settings().cors_allow_origins
    if not origins:
        return result
    headers = event.get("headers") or {}
    origin = next((str(v) for k, v in headers.items() if k.lower() == "origin"), None)
    cors = CorsConfig.from_origins(origins).response_headers(origin)
    if not cors:
        return result
    if isinstance(result, StreamingResponse):
        return replace(result, headers={**result.headers, **cors})
    result["headers"] = {**(result.get("headers") or {}), **cors}
    return result


def _log_keys(event: Mapping[str, Any], request_id: str) -> None:
    """The keys every log line of this invocation carries; the body only with PARLEY_LOG_CONTENT."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    project_id = authorizer.get("project_id") if isinstance(authorizer, Mapping) else None
    keys: dict[str, Any] = {
        "request_id": request_id,
        "route": f"{event.get('httpMethod', '')} {event.get('resource', '')}",
    }
    if project_id:
        keys["project_id"] = str(project_id)
    logger().append_keys(**keys)
    if get_settings().log_content:
        logger().info("request body (PARLEY_LOG_CONTENT)", extra={"body": event.get("body")})


def outcome_of(status: int) -> str:
    return "succeeded" if status < 400 else ("rejected" if status < 500 else "failed")


def _log_outcome(status: int, started: float, **extra: Any) -> None:
    logger().append_keys(outcome=outcome_of(status))
    logger().info("request", extra={"status": status, "latency_ms": int((time.monotonic() - started) * 1000), **extra})


def _then_log(body: Iterator[bytes], status: int, started: float) -> Iterator[bytes]:
    """The stream's "request" line once its body drained (or the client went away)."""
    drained = False
    try:
        yield from body
        drained = True
    finally:
        _log_outcome(status, started, streamed=True, drained=drained)


def _precheck(app: ParleyResolver, event: Mapping[str, Any]) -> None:
    """Cheap refusals before any parsing: oversize bodies, then the route's permission."""
    body = event.get("body") or ""
    # surrogatepass: a lone surrogate is counted here and refused later (bodies.normalise)
    size = len(body) * 3 // 4 if event.get("isBase64Encoded") else len(str(body).encode("utf-8", "surrogatepass"))
    limit = get_settings().max_body_bytes
    if size > limit:
        raise PayloadTooLarge(f"The request body is {size} bytes; the limit is {limit} bytes.")
    found, permission = app.permission_for(str(event.get("httpMethod", "")), str(event.get("resource", "")))
    if found and permission is not None:
        context = (event.get("requestContext") or {}).get("authorizer")
        if not context:
            raise AuthenticationFailed("Missing or invalid API key. Send 'Authorization: Bearer <api key>'.")
        caller = Principal.from_context(context)
        if caller.expired(iso()):  # the authorizer's answer may be cached past the expiry
            raise AuthenticationFailed("This API key has expired.", code="api_key_expired")
        caller.require(permission)


def _error_dict(error: ParleyError, request_id: str) -> dict[str, Any]:
    status, headers, body = error_response(error, request_id)
    return {"statusCode": status, "headers": headers, "body": body.decode(), "isBase64Encoded": False}


def _then_flush(body: Iterator[bytes]) -> Iterator[bytes]:
    """Flush metrics once the body has drained (or the client went away)."""
    try:
        yield from body
    finally:
        _flush_metrics()


def _flush_metrics() -> None:
    m = metrics()
    if m.metric_set:
        m.flush_metrics()
