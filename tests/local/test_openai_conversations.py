"""Issue 17 (item 4), acceptance: the official openai SDK with base_url .../openai/v1 against the
local server, unchanged: the Conversations API (over Parley's own conversations), and every other
route the SDK knows under that base URL. Every body is also validated strictly with the SDK's own
types, from the raw wire."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types import CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion
from openai.types.conversations import (
    Conversation,
    ConversationDeletedResource,
    ConversationItem,
    ConversationItemList,
)
from openai.types.responses import Response
from pydantic import TypeAdapter

from tests.local.conftest import Server

pytestmark = pytest.mark.local

ITEM: TypeAdapter[Any] = TypeAdapter(ConversationItem)


def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key=server.key, max_retries=0)


def raw(server: Server, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{server.url}{path}",
        json=body,
        params=params or None,
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=30,
    )


def strict(model: Any, response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return model.model_validate(json.loads(response.text), strict=True)


def test_conversation_create_retrieve_update_delete_in_openais_shapes(server: Server) -> None:
    sdk = client(server)
    conversation = sdk.conversations.create(
        metadata={"topic": "billing"},
        items=[{"type": "message", "role": "user", "content": "Hi, my invoice is wrong."}],
    )
    assert conversation.id.startswith("conv_") and conversation.metadata == {"topic": "billing"}
    strict(Conversation, raw(server, "GET", f"/openai/v1/conversations/{conversation.id}"))
    # the same conversation through Parley's own API, its item a message there
    native = raw(server, "GET", f"/v1/conversations/{conversation.id}").json()
    assert native["metadata"] == {"topic": "billing"} and native["message_count"] == 1
    messages = raw(server, "GET", f"/v1/conversations/{conversation.id}/messages").json()["data"]
    assert [(m["role"], m["content"]) for m in messages] == [("user", "Hi, my invoice is wrong.")]

    updated = sdk.conversations.update(conversation.id, metadata={"topic": "refunds", "tier": "gold"})
    assert updated.metadata == {"topic": "refunds", "tier": "gold"}
    assert sdk.conversations.retrieve(conversation.id).metadata == {"topic": "refunds", "tier": "gold"}

    deleted = strict(ConversationDeletedResource, raw(server, "DELETE", f"/openai/v1/conversations/{conversation.id}"))
    assert deleted.id == conversation.id and deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        sdk.conversations.retrieve(conversation.id)
    assert raw(server, "GET", f"/v1/conversations/{conversation.id}").status_code == 404


def test_a_parley_conversation_is_an_openai_conversation(server: Server) -> None:
    created = raw(server, "POST", "/v1/conversations", {"metadata": {"page": "/help"}}).json()
    sent = raw(server, "POST", f"/v1/conversations/{created['id']}/messages", {"content": "Hello there"})
    assert sent.status_code in (200, 201), sent.text
    sdk = client(server)
    assert sdk.conversations.retrieve(created["id"]).metadata == {"page": "/help"}
    items = sdk.conversations.items.list(created["id"], order="asc")
    assert [(i.type, i.role) for i in items.data] == [("message", "user"), ("message", "assistant")]  # type: ignore[union-attr]
    messages = raw(server, "GET", f"/v1/conversations/{created['id']}/messages").json()["data"]
    assert sorted(i.id for i in items.data) == sorted(m["id"] for m in messages)  # item ids are message ids


def test_responses_with_conversation_show_in_the_items(server: Server) -> None:
    sdk = client(server)
    conversation = sdk.conversations.create()
    response = sdk.responses.create(model="echo", input="What is the weather?", conversation=conversation.id)
    assert response.output_text == "What is the weather?"
    Response.model_validate(json.loads(raw(server, "GET", f"/openai/v1/responses/{response.id}").text), strict=True)
    items = sdk.conversations.items.list(conversation.id, order="asc")
    assert [(i.type, i.role) for i in items.data] == [("message", "user"), ("message", "assistant")]  # type: ignore[union-attr]
    assert items.data[1].id == response.output[0].id
    listed = strict(ConversationItemList, raw(server, "GET", f"/openai/v1/conversations/{conversation.id}/items"))
    assert [i.role for i in listed.data] == ["assistant", "user"]  # desc by default, as OpenAI
    # a second turn continues the same conversation
    sdk.responses.create(model="echo", input="And tomorrow?", conversation=conversation.id)
    assert len(sdk.conversations.items.list(conversation.id).data) == 4


def test_items_create_list_page_retrieve_delete(server: Server) -> None:
    sdk = client(server)
    conversation = sdk.conversations.create()
    added = sdk.conversations.items.create(
        conversation.id,
        items=[
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "Sunny, 21C"},
            {"type": "message", "role": "assistant", "content": "It is sunny in Paris."},
        ],
    )
    assert [i.type for i in added.data] == ["message", "function_call", "function_call_output", "message"]
    ids = [i.id for i in added.data]
    page = strict(
        ConversationItemList,
        raw(server, "GET", f"/openai/v1/conversations/{conversation.id}/items", order="asc", limit=2),
    )
    assert [i.id for i in page.data] == ids[:2] and page.has_more and page.first_id == ids[0]
    rest = sdk.conversations.items.list(conversation.id, order="asc", after=page.last_id, limit=10)
    assert [i.id for i in rest.data] == ids[2:] and not rest.has_more
    newest = sdk.conversations.items.list(conversation.id, limit=1)
    assert [i.id for i in newest.data] == ids[3:]
    every = [i.id for i in sdk.conversations.items.list(conversation.id, limit=1)]  # the SDK's auto-paging
    assert every == ids[::-1]
    for item_id in ids:
        fetched = raw(server, "GET", f"/openai/v1/conversations/{conversation.id}/items/{item_id}")
        assert ITEM.validate_python(json.loads(fetched.text), strict=True).id == item_id
    call = sdk.conversations.items.retrieve(ids[1], conversation_id=conversation.id)
    assert call.type == "function_call" and call.name == "get_weather"  # type: ignore[union-attr]

    after_delete = sdk.conversations.items.delete(ids[3], conversation_id=conversation.id)
    assert after_delete.id == conversation.id
    assert [i.id for i in sdk.conversations.items.list(conversation.id, order="asc")] == ids[:3]
    with pytest.raises(openai.NotFoundError):
        sdk.conversations.items.retrieve(ids[3], conversation_id=conversation.id)
    assert raw(server, "GET", f"/v1/conversations/{conversation.id}").json()["message_count"] == 3
    # a conversation with a gap goes on: the next exchange lands after it
    sdk.responses.create(model="echo", input="Thanks", conversation=conversation.id)
    assert len(sdk.conversations.items.list(conversation.id).data) == 5


def test_bad_items_are_clear_400s_and_unknown_ids_404s(server: Server) -> None:
    sdk = client(server)
    conversation = sdk.conversations.create()
    too_many = [{"type": "message", "role": "user", "content": f"m{i}"} for i in range(21)]
    assert (
        raw(server, "POST", f"/openai/v1/conversations/{conversation.id}/items", {"items": too_many}).status_code == 400
    )
    assert raw(server, "POST", f"/openai/v1/conversations/{conversation.id}/items", {"items": []}).status_code == 400
    system = raw(
        server,
        "POST",
        f"/openai/v1/conversations/{conversation.id}/items",
        {"items": [{"type": "message", "role": "system", "content": "Be terse"}]},
    )
    assert system.status_code == 400 and system.json()["error"]["param"] == "items[0].role"
    long_value = raw(server, "POST", "/openai/v1/conversations", {"metadata": {"k": "x" * 513}})
    assert long_value.status_code == 400
    for item_id in ("msg_nothere", "fc_nothere00", "fco_nothere", "nonsense", "x_"):
        missing = raw(server, "GET", f"/openai/v1/conversations/{conversation.id}/items/{item_id}")
        assert missing.status_code == 404, item_id
    with pytest.raises(openai.NotFoundError):
        sdk.conversations.items.list("conv_nothere")
    with pytest.raises(openai.NotFoundError):
        sdk.conversations.retrieve("resp_wrongkind")
    assert raw(server, "GET", f"/openai/v1/conversations/{conversation.id}/items", limit=0).status_code == 400


def test_every_route_the_sdk_knows_answers_under_the_openai_base_url(server: Server) -> None:
    sdk = client(server)
    models = sdk.models.list()
    assert "echo" in [m.id for m in models]
    Model.model_validate(json.loads(raw(server, "GET", "/openai/v1/models/echo").text), strict=True)
    completion = strict(
        ChatCompletion,
        raw(
            server,
            "POST",
            "/openai/v1/chat/completions",
            {"model": "echo", "messages": [{"role": "user", "content": "Hi"}]},
        ),
    )
    assert completion.choices[0].message.content == "Hi"
    chunks = list(sdk.chat.completions.create(model="echo", messages=[{"role": "user", "content": "Hi"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hi"
    embedded = strict(
        CreateEmbeddingResponse, raw(server, "POST", "/openai/v1/embeddings", {"model": "local", "input": "Hi"})
    )
    assert len(embedded.data) == 1
    response = sdk.responses.create(model="echo", input="Hello")
    assert [i.type for i in sdk.responses.input_items.list(response.id)] == ["message"]
    with pytest.raises(openai.BadRequestError):
        sdk.responses.cancel(response.id)  # a synchronous response, as OpenAI answers it
    sdk.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)


def test_a_browsers_requests_get_cors_headers_streamed_or_not_and_on_gateway_errors(server: Server) -> None:
    origin = {"Origin": "https://app.example", "Authorization": f"Bearer {server.key}"}
    url = f"{server.url}/openai/v1/responses"
    preflight = httpx.options(
        url, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}, timeout=10
    )
    assert preflight.status_code == 204 and "Authorization" in preflight.headers["access-control-allow-headers"]
    plain = httpx.post(url, json={"model": "echo", "input": "Hi"}, headers=origin, timeout=30)
    assert plain.status_code == 200 and plain.headers["access-control-allow-origin"] == "*"
    with httpx.stream(
        "POST", url, json={"model": "echo", "input": "Hi", "stream": True}, headers=origin, timeout=30
    ) as streamed:
        assert streamed.headers["access-control-allow-origin"] == "*"
        assert "response.completed" in streamed.read().decode()
    refused = httpx.get(f"{server.url}/openai/v1/models", headers={"Origin": "https://app.example"}, timeout=10)
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "*"
