"""Call a route's lambda_handler the way API Gateway does, from its sample event."""

from __future__ import annotations

import json
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
            return Reply(result.status, b"".join(result.body).decode(), result.headers)
        return Reply(result["statusCode"], json.loads(result["body"]) if result["body"] else None, result["headers"])
