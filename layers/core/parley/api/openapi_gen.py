"""Parley's OpenAPI 3.1 document, generated from the route table and the handlers' own models.

    .venv/bin/python -m parley.api.openapi_gen          # (or `make openapi`) writes both copies
    .venv/bin/python -m parley.api.openapi_gen --check  # exit 1 when a committed copy drifted

The document is built at build time, never in a Lambda (GET /v1/openapi.json serves the file this
writes into the core package, so its cold start imports no other handler):

1. For every function of functions/routes.py, its handler's resolver says what Powertools knows:
   parameters and request bodies from the pydantic models the handler validates with (strict
   models: `{"temperature": false}` is refused by the handler and by the schema alike), and the
   success response from the handler's return type (or its `responses=`). The per-function
   documents are merged with Powertools' OpenAPIMerge.
2. The route table adds what Powertools does not know: the permission (`x-parley-permission` and
   a bearer `security` requirement; `security: []` for public routes), every error status the
   route can answer in the error model, `Idempotency-Key` on POSTs, server-sent events for
   streaming routes, and links from create routes to the routes of what they created.

Nothing is listed by hand: a route added to the table appears after a regeneration, and a route
whose handler declares no response model (or a streaming route without its events) stops the
generator with a message saying what to add.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from parley import __version__
from parley.api.errors import ErrorResponse
from parley.api.routing import Route, RouteTable, load_module, load_route_table

PACKAGED = Path(__file__).with_name("openapi.json")  # shipped in the core package; served by openapi_get
REPO_ROOT = Path(__file__).resolve().parents[4]
DOCS = REPO_ROOT / "docs" / "openapi.json"
ROUTES = REPO_ROOT / "functions" / "routes.py"
OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/"
SECURITY_SCHEME = "bearerAuth"
SSE = "text/event-stream"
JSON = "application/json"
# Resources that say what a route touches (functions/routes.py): invoking models, or any table.
MODEL_RESOURCE = "bedrock"
# Request-body fields named like this carry ids of the caller's project (404 when they are not).
_ID_FIELD = re.compile(r"^([a-z]+_)*id$")
_NOT_A_REFERENCE = frozenset({"user_id", "session_id", "tool_call_id"})

# The error responses (components.responses), each in the error model (DESIGN.md section 3).
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
ERRORS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # status: (component name, description, headers)
    "400": (
        "BadRequest",
        "invalid_request_error: the request is invalid (`param` names the field), e.g. a body the model refuses, "
        "an invalid cursor or Idempotency-Key, a body that is not UTF-8 JSON or nests too deep.",
        {},
    ),
    "401": ("Unauthorized", "authentication_error: missing, unknown, revoked or expired API key.", {}),
    "403": ("Forbidden", "permission_error: the API key lacks the route's permission (x-parley-permission).", {}),
    "404": (
        "NotFound",
        "not_found_error: no such resource in the key's project (an id of another project answers 404 too).",
        {},
    ),
    "409": (
        "Conflict",
        "conflict_error: e.g. conversation_archived, idempotency_key_reused, idempotency_request_in_progress "
        "(with Retry-After), a concurrent change.",
        _RETRY_AFTER,
    ),
    "413": ("PayloadTooLarge", "invalid_request_error request_too_large: the body is over the limit.", {}),
    "415": (
        "UnsupportedMediaType",
        "invalid_request_error unsupported_media_type: bodies are UTF-8 JSON (application/json).",
        {},
    ),
    "429": (
        "TooManyRequests",
        "rate_limit_error: too many requests (API Gateway, a rate limit or budget, or the model provider); "
        "retry after Retry-After.",
        _RETRY_AFTER,
    ),
    "500": ("InternalError", "api_error internal_error: a bug; no internals are returned. Report the request_id.", {}),
    "502": ("ProviderError", "provider_error: the model provider failed (nothing was charged twice).", _RETRY_AFTER),
    "503": (
        "ServiceUnavailable",
        "api_error service_unavailable: Parley's storage is throttled; nothing was stored. Retry after Retry-After.",
        _RETRY_AFTER,
    ),
    "504": (
        "Timeout",
        "provider_timeout (the model provider timed out) or api_error timeout (API Gateway's 29 s limit for "
        "buffered routes).",
        {},
    ),
}
_GENERIC: tuple[dict[str, Any], ...] = (
    {},
    {"type": "string"},
    {"type": "object"},
    {"type": "object", "additionalProperties": True},
)


class OpenAPIError(Exception):
    """The route table and the handlers cannot make a complete document (the message says what to add)."""


# ---------------------------------------------------------------- building


def build(table: RouteTable) -> dict[str, Any]:
    """The whole document for a route table (importing every handler: build time only)."""
    from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge  # noqa: PLC0415

    merge = OpenAPIMerge(
        title="Parley API",
        version=__version__,
        openapi_version=OPENAPI_VERSION,
        summary="Self-hosted serverless conversation API: OpenAI-compatible completions, stored conversations.",
        description=(
            "Every route of functions/routes.py. Authenticate with `Authorization: Bearer <api key>`; each "
            "operation's `x-parley-permission` names the action the key needs. Errors use OpenAI's shape, "
            '`{"error": {"type", "code", "message", "param", "request_id"}}`. Every POST honours '
            "`Idempotency-Key`."
        ),
        on_conflict="error",
    )
    names: dict[tuple[str, str], str] = {}  # (method, path) -> the handler function's name
    components: dict[str, tuple[str, Any]] = {}  # name -> (the function that defined it, its schema)
    for function in table.functions():
        module = load_module(table.handler_path(function), f"parley_openapi_{function}")
        app = module.app
        for declared in getattr(app, "declared", ()):
            names[(declared.method, declared.rule.replace("<", "{").replace(">", "}"))] = declared.name
        schema = app.get_openapi_schema(openapi_version=OPENAPI_VERSION)
        document = schema.model_dump(by_alias=True, exclude_none=True, mode="json")
        for name, value in document.get("components", {}).get("schemas", {}).items():
            _add_component(components, name, value, function)
        merge.add_schema(document)
    merged = merge.get_openapi_schema()
    for name, value in _model_schemas(ErrorResponse).items():
        _add_component(components, name, value, "parley.api.errors")
    return _finish(table, merged, names, {name: value for name, (_, value) in components.items()})


def _finish(
    table: RouteTable, merged: dict[str, Any], names: dict[tuple[str, str], str], schemas: dict[str, Any]
) -> dict[str, Any]:
    found = merged.get("paths", {})
    in_table = {(r.path, r.method.lower()) for r in table.routes}
    extra = sorted(f"{m.upper()} {p}" for p, item in found.items() for m in item if (p, m) not in in_table)
    if extra:
        raise OpenAPIError(f"handlers declare routes the table does not have: {', '.join(extra)}")
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: dict[str, Route] = {}
    for route in table.routes:
        operation = found.get(route.path, {}).get(route.method.lower())
        if operation is None:
            raise OpenAPIError(f"{_name(route)}: functions/{route.function}/handler.py does not declare this route")
        name = names.get((route.method, route.path)) or operation["operationId"]
        if name in operation_ids:
            raise OpenAPIError(
                f"{_name(route)}: operationId {name!r} is also {_name(operation_ids[name])}'s; rename one handler"
            )
        operation_ids[name] = route
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, name, operation, schemas)
    _add_links(table, paths, schemas)
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):  # Powertools' 422/500 shapes
        schemas.pop(name, None)
    unused = set(schemas) - _referenced(paths, schemas)
    for name in unused:
        schemas.pop(name)
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": merged["info"],
        "servers": [{"url": "/", "description": "The API's own origin (the API Gateway stage or make serve)."}],
        "tags": [{"name": tag} for tag in sorted({_tag(r) for r in table.routes})],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": {
                name: {
                    "description": description,
                    **({"headers": headers} if headers else {}),
                    "content": {JSON: {"schema": {"$ref": f"{REF}ErrorResponse"}}},
                }
                for name, description, headers in ERRORS.values()
            },
            "securitySchemes": {
                SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "description": "A Parley API key (prl_...)."}
            },
        },
    }
    return document


def _operation(route: Route, name: str, found: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": [_tag(route)],
        "summary": route.description or f"{route.method} {route.path}",
        "operationId": name,
    }
    if found.get("description"):
        operation["description"] = found["description"]
    parameters = [_parameter(p) for p in found.get("parameters", [])]
    if route.method == "POST":
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Retries with the same key get the first response (24 h); 1 to 255 printable "
                "characters.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7E]+$"},
            }
        )
    if parameters:
        operation["parameters"] = parameters
    if "requestBody" in found:
        operation["requestBody"] = found["requestBody"]
    operation["responses"] = {**_successes(route, found["responses"], schemas), **_errors(route, found, schemas)}
    operation["security"] = [] if route.permission is None else [{SECURITY_SCHEME: []}]
    operation["x-parley-permission"] = route.permission
    operation["x-parley-function"] = route.function
    if route.streaming:
        operation["x-parley-streaming"] = True
    return operation


def _parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    parameter = dict(parameter)
    if parameter.get("in") == "path":
        parameter.setdefault("description", f"The {parameter['name'].removesuffix('_id')}'s id.")
    return parameter


def _successes(route: Route, responses: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    found = {status: r for status, r in responses.items() if str(status).startswith("2")}
    if not found:
        raise OpenAPIError(f"{_name(route)}: no success response; give the handler a return type (a pydantic model)")
    successes: dict[str, Any] = {}
    for status, declared in sorted(found.items()):
        response = copy.deepcopy(declared)
        content = response.get("content") or {}
        body = (content.get(JSON) or {}).get("schema")
        if body is None or _resolve(body, schemas) in _GENERIC:
            raise OpenAPIError(
                f"{_name(route)}: the {status} response has no schema (got {body!r}); return a pydantic model "
                "from functions/" + route.function + "/handler.py, or declare it with responses="
            )
        if SSE in content:
            if not route.streaming:
                raise OpenAPIError(f"{_name(route)} answers {SSE} but the route table does not mark it streaming=True")
            content[SSE] = _sse(content[SSE], schemas)
        if response.get("description") in (None, "", "Successful Response"):
            response["description"] = route.description or "Success."
        headers = {"x-request-id": {"description": "The request id.", "schema": {"type": "string"}}}
        if route.method == "POST":
            headers["Idempotent-Replayed"] = {
                "description": "`true` when the response is a replay of an earlier request with the same "
                "Idempotency-Key.",
                "schema": {"type": "string", "enum": ["true"]},
            }
        response["headers"] = headers
        successes[str(status)] = response
    # a streaming route may also answer some requests as JSON only (a send that calls no model: 202)
    if route.streaming and not any(SSE in (r.get("content") or {}) for r in successes.values()):
        raise OpenAPIError(
            f"{_name(route)} is streaming=True in the table, but its handler declares no {SSE} response; "
            "declare it with responses=parley.api.replies.streamed_responses(...)"
        )
    return successes


def _sse(media: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """A handler's text/event-stream declaration (the model of one event's data, parley.api.replies) as
    the stream it describes: in OpenAPI 3.1 a text/event-stream `schema` describes each event,
    `{"event", "data", "id", "retry"}`, and `data` here is JSON (contentMediaType, contentSchema)."""
    data = media.get("schema") or {}
    stream = dict(media.get("x-parley-sse") or {})
    description = _resolve_full(data, schemas).get("description", "")
    payload = {"type": "string", "contentMediaType": JSON, "contentSchema": data}
    event: dict[str, Any] = {
        "type": "object",
        "description": "One server-sent event. " + description,
        "required": ["data"],
        "properties": {
            "event": {"type": "string"},
            "data": payload,
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        },
    }
    if stream.get("events"):
        event["required"] = ["event", "data"]
        event["properties"]["event"] = {"type": "string", "enum": list(stream["events"])}
    if stream.get("done"):
        # the last event's data is a sentinel, not JSON
        event["properties"]["data"] = {"type": "string"}
        event["if"] = {"properties": {"data": {"const": stream["done"]}}}
        event["else"] = {"properties": {"data": payload}}
    return {"schema": event, "x-parley-sse": {**stream, "data": data}}


def _errors(route: Route, operation: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """Every error status the route can answer, from what the table says it is and touches."""
    has_body = "requestBody" in operation
    calls_models = MODEL_RESOURCE in route.resources
    statuses = ["400"]
    if route.permission is not None:
        statuses += ["401", "403"]
    if (
        route.params
        or (has_body and _references_ids(operation["requestBody"], schemas))
        or any(_names_a_resource(p) for p in operation.get("parameters", []))
    ):
        statuses.append("404")
    writes = route.method != "GET" or any(r.endswith(":update") for r in route.resources)
    if writes and route.resources:
        statuses.append("409")
    if has_body:
        statuses += ["413", "415"]
    statuses += ["429", "500"]
    if calls_models:
        statuses.append("502")
    if route.resources:
        statuses.append("503")
    statuses.append("504")
    return {status: {"$ref": f"#/components/responses/{ERRORS[status][0]}"} for status in statuses}


def _names_a_resource(parameter: dict[str, Any]) -> bool:
    """A query parameter naming a resource (`project_id`); org_id only has to match the key's (400)."""
    name = str(parameter.get("name", ""))
    return parameter.get("in") == "query" and bool(_ID_FIELD.match(name)) and name not in _NOT_A_REFERENCE | {"org_id"}


def _references_ids(body: dict[str, Any], schemas: dict[str, Any]) -> bool:
    return any(_ID_FIELD.match(name) and name not in _NOT_A_REFERENCE for name in _property_names(body, schemas, set()))


def _property_names(node: Any, schemas: dict[str, Any], seen: set[str]) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF):
            name = ref.removeprefix(REF)
            if name not in seen:
                seen.add(name)
                yield from _property_names(schemas.get(name, {}), schemas, seen)
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                yield from value
            yield from _property_names(value, schemas, seen)
    elif isinstance(node, list):
        for item in node:
            yield from _property_names(item, schemas, seen)


def _add_links(table: RouteTable, paths: dict[str, dict[str, Any]], schemas: dict[str, Any]) -> None:
    """OpenAPI links (for clients and stateful testing): from a create route's response to the
    routes of what it created (`id` in their path), to the creates whose body names it (a created
    provider's id as `provider_id` or `ai_provider_id`), and from a delete to reading the same
    resource again."""
    for route in table.routes:
        operation = paths[route.path][route.method.lower()]
        if route.method == "POST" and "201" in operation["responses"]:
            links: dict[str, Any] = {}
            names: set[str] = set()  # the created resource's id parameter, e.g. provider_id
            for target in table.routes:
                rest = target.path.removeprefix(route.path + "/")
                if rest == target.path or not rest.startswith("{"):
                    continue
                param = rest.split("/", 1)[0][1:-1]
                names.add(param)
                parameters = {param: "$response.body#/id"}
                parameters.update({p: f"$request.path.{p}" for p in route.params})
                target_id = paths[target.path][target.method.lower()]["operationId"]
                links[target_id] = {
                    "operationId": target_id,
                    "parameters": parameters,
                    "description": f"{target.method} {target.path} for the created resource.",
                }
            for target in table.routes:
                target_operation = paths[target.path][target.method.lower()]
                if target.method != "POST" or target.params or "requestBody" not in target_operation:
                    continue
                body = target_operation["requestBody"]["content"].get(JSON, {}).get("schema", {})
                fields = _resolve_full(body, schemas).get("properties", {})
                named = [f for f in fields if any(f == n or f.endswith("_" + n) for n in names)]
                if named and target is not route:
                    target_id = target_operation["operationId"]
                    links[target_id] = {
                        "operationId": target_id,
                        "requestBody": dict.fromkeys(named, "$response.body#/id"),
                        "description": f"{target.method} {target.path} naming the created resource.",
                    }
            if links:
                operation["responses"]["201"]["links"] = links
        if route.method == "DELETE" and "get" in paths[route.path]:
            target_id = paths[route.path]["get"]["operationId"]
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    response["links"] = {
                        target_id: {
                            "operationId": target_id,
                            "parameters": {p: f"$request.path.{p}" for p in route.params},
                            "description": "Reading what was deleted answers 404.",
                        }
                    }


# ---------------------------------------------------------------- helpers


def _name(route: Route) -> str:
    return f"{route.method} {route.path}"


def _tag(route: Route) -> str:
    if route.permission is not None:
        return route.permission.split(":", 1)[0]
    return "operations"


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(REF):
        return _resolve(schemas.get(ref.removeprefix(REF), {}), schemas)
    return {k: v for k, v in schema.items() if k not in ("title", "description")}


def _resolve_full(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(REF):
        return _resolve_full(schemas.get(ref.removeprefix(REF), {}), schemas)
    return schema


def _model_schemas(model: Any) -> dict[str, Any]:
    """A model's JSON schema and its definitions, as components (response mode, like Powertools')."""
    schema = TypeAdapter(model).json_schema(ref_template=REF + "{model}", mode="serialization")
    definitions = schema.pop("$defs", {})
    return {**definitions, model.__name__: schema}


def _add_component(components: dict[str, tuple[str, Any]], name: str, value: Any, source: str) -> None:
    if name in components and components[name][1] != value:
        raise OpenAPIError(
            f"two different models are both named {name!r} (in {components[name][0]} and {source}); "
            "rename one, component names are global in the document"
        )
    components.setdefault(name, (source, value))


def _referenced(paths: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    pending = [paths]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(REF) and ref.removeprefix(REF) not in seen:
                seen.add(ref.removeprefix(REF))
                pending.append(schemas.get(ref.removeprefix(REF), {}))
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return seen | {"ErrorResponse", "ErrorDetail"}


def render(document: dict[str, Any]) -> str:
    """The document as committed: stable, readable JSON."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def targets() -> tuple[Path, ...]:
    return (PACKAGED, DOCS)


def drifted(text: str) -> list[Path]:
    """The committed copies that differ from `text`."""
    return [path for path in targets() if not path.is_file() or path.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parley.api.openapi_gen", description=__doc__.split("\n")[0])
    parser.add_argument("--routes", type=Path, default=ROUTES, help="the route table (functions/routes.py)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a committed copy drifted")
    args = parser.parse_args(argv)
    try:
        text = render(build(load_route_table(args.routes)))
    except OpenAPIError as error:
        print(f"openapi: {error}", file=sys.stderr)
        return 2
    stale = drifted(text)
    if args.check:
        for path in stale:
            print(f"openapi: {path} is out of date; run `make openapi`", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"openapi: wrote {path}")
    if not stale:
        print("openapi: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
