"""Call a route's lambda_handler the way API Gateway does, from its sample event."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from parley.api.routing import Route
from parley.api.streaming import StreamingResponse
from parley.domain.principal import Principal


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]
    after: Callable[[], None] | None = None  # with run_after=False: the work left for after the response


class Api:
    def __init__(self, load_handler: Any, sample_event: Any, context: Any, principal: Principal) -> None:
        self._load, self._sample, self._context = load_handler, sample_event, context
        self.principal = principal

    def call(
        self,
        function: str,
        body: Any = None,
        *,
        path: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        principal: Principal | None = None,
        headers: dict[str, str] | None = None,
        route: Route | None = None,
        run_after: bool = True,
    ) -> Reply:
        """Invoke `function` with its sample event; `route` (one of the routes the function serves)
        replaces the sample's method and resource, for functions that serve more than one."""
        caller = principal or self.principal
        event = self._sample(function, authorizer={"principalId": caller.key_id, **caller.to_context()})
        if route is not None:
            event["httpMethod"] = event["requestContext"]["httpMethod"] = route.method
            event["resource"] = event["requestContext"]["resourcePath"] = event["path"] = route.path
        event["body"] = json.dumps(body) if body is not None else None
        if path:
            event["pathParameters"] = path
            event["path"] = event["resource"].format(**path)
        event["queryStringParameters"] = query
        if headers:
            event["headers"] = {**(event.get("headers") or {}), **headers}
            event["multiValueHeaders"] = {
                **(event.get("multiValueHeaders") or {}),
                **{k: [v] for k, v in headers.items()},
            }
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
        result = self._load(function)(event, self._context)
        if isinstance(result, StreamingResponse):
            body = b"".join(result.body).decode()
            if result.after is None:
                return Reply(result.status, body, result.headers)
            # a JSON answer with work after it (a background response): run it as the drivers do,
            # once the response is sent, unless the test runs it itself
            if run_after:
                result.after()
            return Reply(
                result.status, _decoded(body, result.headers), result.headers, None if run_after else result.after
            )
        return Reply(result["statusCode"], json.loads(result["body"]) if result["body"] else None, result["headers"])


def _decoded(body: str, headers: dict[str, str]) -> Any:
    """A streamed response's body: JSON ones parsed (a response answered as one chunk), SSE as text."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    return json.loads(body) if content_type.startswith("application/json") and body else body
