"""The fuzz suite: malformed requests to every route of functions/routes.py, with a valid API
key so the handlers are reached. Whatever comes in, no response is a 5xx, and every body is
JSON: the error model for an error, a success otherwise (or an SSE stream without an
internal error in it).

Two paths, both in process on moto:
- HTTP through `LocalApi` (API Gateway's part: routing, the authorizer, proxy events built
  from raw bytes) into the handlers;
- Lambda events straight into each route's `lambda_handler`, with what API Gateway could put
  in an event but HTTP bytes cannot easily say (any text in path parameters and query values,
  base64 flags, lone surrogates).

First a deterministic sweep (every route x a fixed list of hostile inputs), then hypothesis
(derandomized, bounded). PARLEY_FUZZ_EXAMPLES raises the hypothesis budget for soak runs
(default 150 per path; `PARLEY_FUZZ_EXAMPLES=5000 pytest tests/fuzz`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import json
import os
import pkgutil
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import parley.domain
from parley.api import cursors
from parley.api.routing import Route, RouteTable
from parley.domain.principal import Principal
from parley.runtime import events
from parley.runtime.local import FakeLambdaContext, LocalApi, LocalResponse
from parley.services.keys import issue_key

EXAMPLES = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
STATUSES: dict[int, int] = {}  # responses seen, by status (printed with -s)
ERROR_FIELDS = {"type", "code", "message", "param", "request_id"}
AGENT_TOOL = {
    "type": "client",
    "name": "lookup",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
}


@dataclass
class World:
    """A project with one of everything, and the API in front of it."""

    api: LocalApi
    route_table: RouteTable
    secret: str
    principal: Principal
    ids: dict[str, str]  # path parameter -> a real id
    cursors: list[str]  # real cursors of several lists


def _json(response: LocalResponse) -> Any:
    return json.loads(b"".join(response.body))


@pytest.fixture
def world(aws: None, route_table: RouteTable) -> World:
    api = LocalApi(route_table)
    key = issue_key("org_fuzz", "proj_fuzz", ("*",), name="fuzz")
    auth = {"Authorization": [f"Bearer {key.secret}"], "Content-Type": ["application/json"]}

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = api.handle("POST", path, auth, json.dumps(body).encode())
        assert response.status in (200, 201), b"".join(response.body)
        return _json(response)  # type: ignore[no-any-return]

    provider = post("/v1/providers", {"type": "echo", "name": "fuzz-echo", "default_model": "echo"})
    chat = post("/v1/chats", {"ai_provider_id": provider["id"], "name": "fuzz chat", "system_message": "Be terse."})
    document = post("/v1/documents", {"name": "d.md", "media_type": "text/markdown", "content": "Refunds: 30 days."})
    conversation = post("/v1/conversations", {"title": "fuzz", "user_id": "user_1"})
    for text in ("one", "two", "three"):
        post(f"/v1/conversations/{conversation['id']}/messages", {"content": text})
    post("/v1/conversations", {"title": "second", "user_id": "user_1"})
    post(f"/v1/conversations/{conversation['id']}/sessions", {"model": "echo"})
    agent = post("/v1/agents", {"name": "fuzz_agent", "tools": [AGENT_TOOL]})
    post(f"/v1/agents/{agent['id']}/rotate-secret", {})
    found = []
    for path in (
        f"/v1/conversations/{conversation['id']}/messages?limit=1",
        "/v1/conversations?limit=1",
        "/v1/audit-events?limit=1",
    ):
        listed = _json(api.handle("GET", path, auth, b""))
        assert listed.get("next_cursor"), (path, listed)
        found.append(listed["next_cursor"])
    ids = {
        "conversation_id": conversation["id"],
        "provider_id": provider["id"],
        "chat_id": chat["id"],
        "document_id": document["id"],
        "agent_id": agent["id"],
    }
    principal = Principal("org_fuzz", "proj_fuzz", key.record.key_id, ("*",))
    return World(api, route_table, key.secret, principal, ids, found)


# ---------------------------------------------------------------- what a response may be


def check(response_status: int, headers: dict[str, str], body: bytes, what: str) -> None:
    """No 5xx; JSON in the error model for errors; a JSON or SSE success otherwise."""
    assert response_status < 500, f"{what} -> {response_status}: {body[:2000]!r}"
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if 200 <= response_status < 300 and content_type.startswith("text/event-stream"):
        assert b"internal_error" not in body, f"{what} -> stream with an internal error: {body[:2000]!r}"
        return
    if response_status == 204 and not body:
        return
    try:
        document = json.loads(body)
    except ValueError:
        pytest.fail(f"{what} -> {response_status} with a body that is not JSON: {body[:500]!r}")
    if response_status >= 400:
        assert isinstance(document, dict) and set(document) == {"error"}, f"{what} -> {document}"
        assert set(document["error"]) == ERROR_FIELDS, f"{what} -> {document}"
        assert all(isinstance(document["error"][f], str) for f in ("type", "code", "message")), document


def send_http(world: World, method: str, target: str, headers: dict[str, list[str]], body: bytes) -> None:
    response = world.api.handle(method, target, headers, body)
    data = b"".join(response.body)
    STATUSES[response.status] = STATUSES.get(response.status, 0) + 1
    check(response.status, response.headers, data, f"{method} {target} {headers} {body[:300]!r}")


def send_event(world: World, route: Route, event: dict[str, Any]) -> None:
    handler = world.api.handler(route.function)
    context = FakeLambdaContext(route.function, event["requestContext"]["requestId"])
    result = handler(event, context)
    if hasattr(result, "body") and not isinstance(result, dict):  # a StreamingResponse
        data = b"".join(result.body)
        check(result.status, result.headers, data, f"event {route.method} {route.path} {event}")
        STATUSES[result.status] = STATUSES.get(result.status, 0) + 1
    else:
        STATUSES[result["statusCode"]] = STATUSES.get(result["statusCode"], 0) + 1
        raw = result["body"] or ""
        data = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8", "surrogatepass")
        check(result["statusCode"], result.get("headers") or {}, data, f"event {route.method} {route.path} {event}")


def target_for(route: Route, params: dict[str, str], query: list[tuple[str, str]] | None = None) -> str:
    path = route.path
    for name, value in params.items():
        path = path.replace("{" + name + "}", quote(value.encode("utf-8", "surrogatepass"), safe=""))
    return path + ("?" + urlencode(query, errors="surrogatepass") if query else "")


def auth_headers(world: World, content_type: str | None = "application/json", **extra: str) -> dict[str, list[str]]:
    headers = {"Authorization": [f"Bearer {world.secret}"], **{k: [v] for k, v in extra.items()}}
    if content_type is not None:
        headers["Content-Type"] = [content_type]
    return headers


def forged(kind: str, position: Any) -> str:
    """A cursor with a valid signature over a position a client could never get from us."""
    data = json.dumps({"v": 2, "k": kind, "p": position}).encode()
    tag = hmac.new(cursors.signing_key(), data, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(tag + data).rstrip(b"=").decode()


# ---------------------------------------------------------------- the vocabulary


def _field_names() -> list[str]:
    """Every field name of Parley's domain models: bodies built from them reach deep validation."""
    names: set[str] = set()
    for info in pkgutil.iter_modules(parley.domain.__path__, "parley.domain."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel:
                names.update(value.model_fields)
                names.update(f.alias for f in value.model_fields.values() if f.alias)
    return sorted(names)


FIELDS = _field_names()
QUERY_NAMES = [
    "limit",
    "cursor",
    "offset",
    "order",
    "status",
    "user_id",
    "include",
    "include_hidden",
    "start_date",
    "end_date",
    "group_by",
    "org_id",
    "stream",
]
WORDS = [
    "echo",
    "user",
    "assistant",
    "system",
    "tool",
    "asc",
    "desc",
    "all",
    "active",
    "archived",
    "model",
    "key",
    "full",
    "summarize",
    "sliding_window",
    "openai",
    "anthropic",
    "bedrock",
    "sessions,messages",
    "true",
    "false",
    "2026-11-01",
    "2026-02-30",
    "9999-12-31T23:59:59Z",
    "https://example.com/v1",
    "http://127.0.0.1:1/",
    "file:///etc/passwd",
]
EDGE_STRINGS = [
    "",
    " ",
    "-1",
    "0",
    "101",
    "1e3",
    "9" * 40,
    "NaN",
    "null",
    "%00",
    "\x00",
    "../../etc",
    "conv_" + "0" * 26,
    "msg_01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "a" * 2000,
    "💬",
    "\u202e",
    "\ud800",
]


def edge_text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(EDGE_STRINGS + WORDS), st.text(max_size=40))


def ids_of_every_shape(world: World) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(sorted(world.ids.values())),
        st.sampled_from([i.replace("_", "-") for i in world.ids.values()] + [i.lower() for i in world.ids.values()]),
        edge_text(),
    )


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([0, 1, -1, 2, 100, 101, 4096, 2**31, 2**63, 10**38, 10**39]),
        st.floats(allow_nan=False, allow_infinity=False),
        edge_text(),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), inner, max_size=5),
        ),
        max_leaves=12,
    )


def bodies() -> st.SearchStrategy[bytes]:
    objects = st.dictionaries(st.sampled_from(FIELDS), json_values(), max_size=6)
    return st.one_of(
        objects.map(lambda o: json.dumps(o).encode()),
        json_values().map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=64),
        st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.integers(min_value=60, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
        st.sampled_from(HOSTILE_BODIES),
    )


HOSTILE_BODIES = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'"text"',
    b"<xml/>",
    b'{"content": NaN}',
    b'{"content": "x", "temperature": 1e999}',
    b'{"max_tokens": ' + b"9" * 5000 + b"}",
    b'{"content": "\\ud800"}',
    b'{"title": "\xff\xfe"}',
    b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
    b'{"a":' * 70 + b"1" + b"}" * 70,
    b"[" * 10_000 + b"]" * 10_000,
    b'{"messages": [{"role": "user", "content": "hi"}], "model": "echo", "stream": true}',
    b'{"content": "hello", "stream": true}',
    b'{"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}',
    b'{"content": {"nested": ["x"]}}',
    b'{"messages": []}',
    b'{"metadata": {"k": "' + b"v" * 5000 + b'"}}',
]
CONTENT_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-8",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "application/xml",
    "text/xml",
    "multipart/form-data; boundary=x",
    "multipart/form-data",
    "application/octet-stream",
    "application/json; charset=latin-1",
    "application/problem+json",
    "",
    ";;;",
    "application/json; charset",
    "\x00",
]


def valid_bodies(world: World) -> dict[str, dict[str, Any]]:
    """A body each writing route accepts: the near-valid bodies below start from these."""
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    return {
        "completions_create": {"model": "echo", **chat},
        "chats_complete": chat,
        "chats_create": {"ai_provider_id": world.ids["provider_id"], "name": "c", "system_message": "s"},
        "chats_update": {"name": "renamed"},
        "providers_create": {"type": "echo", "name": "p2", "default_model": "echo"},
        "providers_update": {"default_model": "echo"},
        "documents_create": {"name": "n.md", "media_type": "text/markdown", "content": "text"},
        "conversations_create": {"title": "t", "user_id": "user_1"},
        "conversations_update": {"title": "t2"},
        "messages_create": {"content": "hello"},
        "context_inject": {"content": "hidden"},
        "sessions_create": {"model": "echo"},
        "agents_create": {"name": "fuzz_agent_2", "system_prompt": "Be terse.", "tools": [AGENT_TOOL]},
        "agents_update": {"system_prompt": "Be brief.", "tools": [AGENT_TOOL], "max_tool_steps": 2},
    }


@st.composite
def near_valid_body(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """A valid body with one to three fields replaced, added or dropped: reaches the services."""
    body = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.one_of(st.sampled_from(sorted(body) or FIELDS), st.sampled_from(FIELDS)))
        if draw(st.integers(0, 4)) == 0:
            body.pop(name, None)
        else:
            body[name] = draw(json_values())
    return json.dumps(body).encode()


# ---------------------------------------------------------------- the deterministic sweep


def declared(world: World, route: Route) -> tuple[list[str], bool]:
    """The query parameters a route's handler declares, and whether it reads a body."""
    app = world.api._modules[route.function].app if route.function in world.api._modules else None
    if app is None:
        world.api.handler(route.function)
        app = world.api._modules[route.function].app
    for registered in app._static_routes + app._dynamic_routes:
        if registered.method == route.method and registered.path == route.powertools_path:
            dependant = registered.dependant
            return [p.alias for p in dependant.query_params], bool(dependant.body_params)
    raise AssertionError(f"{route.function} does not register {route.method} {route.path}")


def test_every_route_survives_a_fixed_list_of_hostile_requests(world: World) -> None:
    cursor_values = [
        *world.cursors,
        *(c[: len(c) // 2] for c in world.cursors),
        "e30",
        "!!!",
        "A" * 500,
        forged("messages", {"conversation_id": world.ids["conversation_id"], "order": "desc", "seq": "x"}),
        forged("messages", {"conversation_id": world.ids["conversation_id"], "order": "desc", "seq": 10**40}),
        forged("conversations", {"before": 5, "user_id": None, "status": "active"}),
        forged("audit_events", {"before": None}),
        forged("chats", {"after": ["x"]}),
        forged("providers", []),
    ]
    sent = 0
    for route in world.route_table.routes:
        query_names, reads_body = declared(world, route)
        good = {name: world.ids.get(name, "conv_" + "0" * 26) for name in route.params}
        content_types = ("application/json", "text/plain", "application/xml") if reads_body else ("application/xml",)
        for body in HOSTILE_BODIES if reads_body else HOSTILE_BODIES[:6]:
            for content_type in content_types:
                send_http(world, route.method, target_for(route, good), auth_headers(world, content_type), body)
                sent += 1
        for bad_id in EDGE_STRINGS if route.params else ():
            params = dict.fromkeys(route.params, bad_id)
            send_http(world, route.method, target_for(route, params), auth_headers(world), b"{}")
            sent += 1
        for name in query_names:
            for value in EDGE_STRINGS + (cursor_values if name == "cursor" else WORDS[:8]):
                send_http(world, route.method, target_for(route, good, [(name, value)]), auth_headers(world), b"")
                sent += 1
        if route.method == "POST":
            for key in ("", " ", "k" * 300, "\x07", "é"):
                headers = auth_headers(world, **{"Idempotency-Key": key})
                send_http(world, route.method, target_for(route, good), headers, b"{}")
                sent += 1
    for route in world.route_table.routes:  # hostile credentials: API Gateway's 401/403, in the error model
        good = {name: world.ids.get(name, "conv_" + "0" * 26) for name in route.params}
        for credential in ("", "Bearer ", "Bearer x", "Basic Zm9vOmJhcg==", "Bearer " + "a" * 5000, "Bearer prl_é"):
            headers = {"Authorization": [credential], "Content-Type": ["application/json"]}
            send_http(world, route.method, target_for(route, good), headers, b"{}")
            sent += 1
    assert sent > 1500
    print("sweep:", sent, "requests;", "statuses:", dict(sorted(STATUSES.items())))


# ---------------------------------------------------------------- hypothesis


@st.composite
def http_requests(draw: st.DrawFn, world: World) -> tuple[str, str, dict[str, list[str]], bytes]:
    route = draw(st.sampled_from(world.route_table.routes))
    params = {name: draw(ids_of_every_shape(world)) for name in route.params}
    query = draw(
        st.lists(
            st.tuples(
                st.one_of(st.sampled_from(QUERY_NAMES), st.text(max_size=8)),
                st.one_of(edge_text(), st.sampled_from(world.cursors), st.integers().map(str)),
            ),
            max_size=4,
        )
    )
    extra = {}
    if draw(st.booleans()):
        extra["Idempotency-Key"] = draw(st.text(max_size=20).filter(lambda k: "\n" not in k and "\r" not in k))
    headers = auth_headers(world, draw(content_types()), **extra)
    return route.method, target_for(route, params, query), headers, draw(route_bodies(world, route))


def content_types() -> st.SearchStrategy[str | None]:
    return st.one_of(st.just("application/json"), st.sampled_from(CONTENT_TYPES))


def route_bodies(world: World, route: Route) -> st.SearchStrategy[bytes]:
    base = valid_bodies(world).get(route.function)
    return bodies() if base is None else st.one_of(near_valid_body(base), near_valid_body(base), bodies())


def test_hypothesis_http_requests_to_every_route(world: World) -> None:
    @FUZZ
    @given(request=http_requests(world))
    def run(request: tuple[str, str, dict[str, list[str]], bytes]) -> None:
        send_http(world, *request)

    STATUSES.clear()
    run()
    print("http:", dict(sorted(STATUSES.items())))


@st.composite
def lambda_events(draw: st.DrawFn, world: World) -> tuple[Route, dict[str, Any]]:
    route = draw(st.sampled_from(world.route_table.routes))
    params = {name: draw(ids_of_every_shape(world)) for name in route.params}
    query = draw(
        st.dictionaries(
            st.sampled_from(QUERY_NAMES), st.one_of(edge_text(), st.sampled_from(world.cursors)), max_size=4
        )
    )
    raw = draw(route_bodies(world, route))
    as_base64 = draw(st.booleans())
    body = base64.b64encode(raw).decode() if as_base64 else raw.decode("utf-8", "surrogateescape")
    content_type = draw(content_types())
    headers = {"Authorization": f"Bearer {world.secret}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    authorizer = {"principalId": world.principal.key_id, **world.principal.to_context()}
    event = events.proxy_event(
        route.method,
        target_for(route, params),
        route.path,
        path_parameters=params or None,
        query={k: [v] for k, v in query.items()} or None,
        headers={k: [v] for k, v in headers.items()},
        authorizer=authorizer,
        request_id=f"fuzz-{draw(st.integers(0, 10**9))}",
    )
    event["body"], event["isBase64Encoded"] = body, as_base64
    return route, event


def test_hypothesis_lambda_events_to_every_handler(world: World) -> None:
    @FUZZ
    @given(case=lambda_events(world))
    def run(case: tuple[Route, dict[str, Any]]) -> None:
        send_event(world, *case)

    STATUSES.clear()
    run()
    print("events:", dict(sorted(STATUSES.items())))
