"""The OpenAPI document (parley.api.openapi_gen): committed copies in step with the route table and
the handlers, complete for every route, and truthful: its schemas refuse what the handlers refuse,
and the SSE event schemas describe what the streams really send."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from parley.api import openapi_gen
from parley.api.routing import RouteTable
from parley.domain.principal import Principal
from tests.handlers.api import Api

ROOT = Path(__file__).resolve().parents[2]
HELLO = {"role": "user", "content": "hi"}


@pytest.fixture(scope="module")
def document(route_table: RouteTable) -> dict[str, Any]:
    return openapi_gen.build(route_table)


def validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    """A validator for components.schemas[name], with the document's $refs resolvable."""
    registry: Registry[Any] = Registry().with_resource("urn:doc", DRAFT202012.create_resource(document))
    return Draft202012Validator({"$ref": f"urn:doc#/components/schemas/{name}"}, registry=registry)


def test_the_committed_documents_are_what_the_table_and_handlers_generate(document: dict[str, Any]) -> None:
    text = openapi_gen.render(document)
    stale = [str(p.relative_to(ROOT)) for p in openapi_gen.drifted(text)]
    assert not stale, (
        f"{', '.join(stale)} drifted from functions/routes.py and the handlers' models: run `make openapi` "
        "(python -m parley.api.openapi_gen) and commit the result"
    )


def test_every_route_of_the_table_is_documented_with_its_permission(
    route_table: RouteTable, document: dict[str, Any]
) -> None:
    operations = {(p, m.upper()) for p, item in document["paths"].items() for m in item}
    assert operations == {(r.path, r.method) for r in route_table.routes}
    for route in route_table.routes:
        operation = document["paths"][route.path][route.method.lower()]
        assert operation["x-parley-permission"] == route.permission
        assert operation["x-parley-function"] == route.function
        if route.permission is None:
            assert operation["security"] == []
            assert "401" not in operation["responses"]
        else:
            assert operation["security"] == [{"bearerAuth": []}]
            assert {"401", "403"} <= set(operation["responses"])


def test_every_route_has_a_response_schema_and_every_error_status(
    route_table: RouteTable, document: dict[str, Any]
) -> None:
    schemas = document["components"]["schemas"]
    for route in route_table.routes:
        operation = document["paths"][route.path][route.method.lower()]
        responses = operation["responses"]
        successes = [s for s in responses if s.startswith("2")]
        assert successes, f"{route.method} {route.path}: no success response"
        for status in successes:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema["$ref"].removeprefix("#/components/schemas/") in schemas, (route.path, schema)
        assert {"400", "429", "500", "504"} <= set(responses), route.path
        if route.params:
            assert "404" in responses, route.path
        if "requestBody" in operation:
            assert {"413", "415"} <= set(responses), route.path
        if "bedrock" in route.resources:  # calls models
            assert {"502", "504"} <= set(responses), route.path
        for status, response in responses.items():
            if not status.startswith("2"):
                name = response["$ref"].rsplit("/", 1)[1]
                error = document["components"]["responses"][name]
                assert error["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    assert set(schemas["ErrorDetail"]["required"]) == {"type", "code", "message", "param", "request_id"}


def test_streaming_routes_document_their_sse_events(route_table: RouteTable, document: dict[str, Any]) -> None:
    for route in route_table.routes:
        responses = document["paths"][route.path][route.method.lower()]["responses"]
        content = {k: v for s, r in responses.items() if s.startswith("2") for k, v in r["content"].items()}
        assert ("text/event-stream" in content) == route.streaming, route.path
        if route.streaming:
            data = content["text/event-stream"]["x-parley-sse"]["data"]
            assert data["$ref"] in (
                "#/components/schemas/ConversationStreamEvent",
                "#/components/schemas/CompletionStreamData",
                "#/components/schemas/ResponsesStreamData",
            )


def test_create_routes_link_to_what_they_created(document: dict[str, Any]) -> None:
    links = document["paths"]["/v1/chats"]["post"]["responses"]["201"]["links"]
    assert links["get_chat"] == {
        "operationId": "get_chat",
        "parameters": {"chat_id": "$response.body#/id"},
        "description": "GET /v1/chats/{chat_id} for the created resource.",
    }
    assert {"update_chat", "delete_chat", "chat_completions"} <= set(links)
    deleted = document["paths"]["/v1/chats/{chat_id}"]["delete"]["responses"]["200"]["links"]
    assert deleted["get_chat"]["parameters"] == {"chat_id": "$request.path.chat_id"}


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        (
            "ChatCompletionRequest",
            {"model": "echo", "messages": [{"role": "user", "content": "hi"}], "temperature": False},
        ),
        (
            "ChatCompletionRequest",
            {"model": "echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "5"},
        ),
        ("ChatCompletionRequest", {"model": "echo", "messages": [], "n": 1}),
        ("ChatCompletionRequest", {"messages": [HELLO]}),
        ("ChatCompletionRequest", {"model": None, "messages": [HELLO]}),
        ("ChatCompletionRequest", {"messages": [HELLO], "provider_id": "aip_1", "ai_provider_id": "aip_2"}),
        ("ConversationCreate", {"title": "x", "is_archived": 0}),
        ("ConversationCreate", {"title": "x", "surprise": 1}),
        ("MessageSend", {"content": "hi", "stream": "true"}),
        ("ProviderCreate", {"type": "echo", "name": "x", "is_default": 1}),
    ],
)
def test_the_schemas_refuse_what_the_strict_models_refuse(document: dict[str, Any], schema: str, body: Any) -> None:
    from pydantic import ValidationError

    from parley.domain import chat, conversations, providers

    model = {
        "ChatCompletionRequest": chat.ChatCompletionRequest,
        "ConversationCreate": conversations.ConversationCreate,
        "MessageSend": conversations.MessageSend,
        "ProviderCreate": providers.ProviderCreate,
    }[schema]
    with pytest.raises(ValidationError):
        model.model_validate(body)
    assert not validator(document, schema).is_valid(body)


@pytest.mark.parametrize(
    "body", [{"messages": [HELLO], "ai_provider_id": "aip_1"}, {"messages": [HELLO], "provider_id": "aip_1"}]
)
def test_the_schemas_accept_what_the_models_accept(document: dict[str, Any], body: Any) -> None:
    from parley.domain.chat import ChatCompletionRequest

    ChatCompletionRequest.model_validate(body)
    assert validator(document, "ChatCompletionRequest").is_valid(body)


def test_a_messages_schema_accepts_exactly_what_its_role_rules_accept(document: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from parley.domain.chat import ChatMessage

    check = validator(document, "ChatMessage")
    options: dict[str, list[Any]] = {
        "role": ["system", "developer", "user", "assistant", "tool"],
        "content": [..., None, "hi", "", [{"type": "text", "text": "hi"}]],
        "document_id": [..., None, "doc_1"],
        "tool_calls": [..., None, [], [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]],
        "tool_call_id": [..., None, "", "c1"],
    }
    disagree = []
    for values in itertools.product(*options.values()):
        message = {k: v for k, v in zip(options, values, strict=True) if v is not ...}
        try:
            ChatMessage.model_validate(message)
            accepted = True
        except ValidationError:
            accepted = False
        if accepted != check.is_valid(message):
            disagree.append((message, accepted))
    assert not disagree, disagree[:5]


def test_every_example_is_valid_for_its_schema(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    found = [(name, example) for name, schema in schemas.items() for example in schema.get("examples", [])]
    assert len(found) >= 10
    for name, example in found:
        errors = list(validator(document, name).iter_errors(example))
        assert not errors, (name, example, errors[:1])


def test_a_boolean_for_a_number_is_refused_by_the_handler_too(
    aws: None, load_handler: Any, sample_event: Any, lambda_context: Any, document: dict[str, Any]
) -> None:
    api = Api(load_handler, sample_event, lambda_context, Principal("org_a", "proj_a", "key_a", ("*",)))
    good = {"model": "echo", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    assert validator(document, "ChatCompletionRequest").is_valid(good)
    assert api.call("completions_create", good).status == 200
    bad = {**good, "temperature": False}
    reply = api.call("completions_create", bad)
    assert (reply.status, reply.body["error"]["param"]) == (400, "temperature")


def _events(body: str) -> list[tuple[str | None, str]]:
    events, name = [], None
    for line in body.split("\n"):
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, line[6:]))
            name = None
    return events


def test_the_sse_schemas_describe_what_the_streams_send(
    aws: None, load_handler: Any, sample_event: Any, lambda_context: Any, document: dict[str, Any]
) -> None:
    api = Api(load_handler, sample_event, lambda_context, Principal("org_a", "proj_a", "key_a", ("*",)))
    conversation = api.call("conversations_create", {"title": "sse"}).body
    sent = api.call(
        "messages_create", {"content": "stream me", "stream": True}, path={"conversation_id": conversation["id"]}
    )
    events = _events(sent.body)
    check = validator(document, "ConversationStreamEvent")
    assert events and all(name is not None for name, _ in events)
    for name, data in events:
        parsed = json.loads(data)
        check.validate(parsed)
        assert parsed["type"] == name
    completion = api.call(
        "completions_create",
        {
            "model": "echo",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "stream me"}],
        },
    )
    chunks = _events(completion.body)
    assert chunks[-1] == (None, "[DONE]")
    check = validator(document, "CompletionStreamData")
    for name, data in chunks[:-1]:
        assert name is None
        check.validate(json.loads(data))


def test_a_route_without_a_response_model_stops_the_generator(tmp_path: Path) -> None:
    from parley.api.routing import Route

    (tmp_path / "things_get").mkdir()
    (tmp_path / "things_get" / "handler.py").write_text(
        "from typing import Any\n"
        "from parley.api.app import build_handler, make_app, requires\n"
        "app = make_app()\n\n"
        "@app.get('/v1/things/<thing_id>')\n"
        "@requires('things:GetThing')\n"
        "def get_thing(thing_id: str) -> dict[str, Any]:\n"
        "    return {'id': thing_id}\n"
    )
    table = RouteTable(
        routes=(Route("GET", "/v1/things/{thing_id}", "things_get", "things:GetThing"),),
        authorizer="authorizer",
        root=tmp_path,
    )
    with pytest.raises(openapi_gen.OpenAPIError, match=r"GET /v1/things/\{thing_id\}: the 200 response has no schema"):
        openapi_gen.build(table)
