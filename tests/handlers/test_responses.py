"""Issue 17 (item 3): OpenAI's Responses API at /v1/responses, through the handlers on moto.

Every response body is validated strictly with the openai SDK's own Response type and every stream
event with a strict TypeAdapter of its ResponseStreamEvent union."""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest
from openai.types.responses import Response, ResponseItem, ResponseStreamEvent, response_create_params
from pydantic import TypeAdapter

from parley.domain.principal import Principal
from parley.domain.responses import ResponseCreate
from parley.providers.base import ModelRequest
from parley.providers.echo import EchoProvider
from tests.handlers import upstream
from tests.handlers.api import Api, Reply
from tests.handlers.test_openai_surface import openai_completion

OWNER = Principal("org_resp", "proj_resp", "key_resp", ("*",))
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
ITEM: TypeAdapter[Any] = TypeAdapter(ResponseItem)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]},
    "strict": True,
}


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[ModelRequest]:
    """The model requests echo receives."""
    calls: list[ModelRequest] = []
    complete, stream = EchoProvider.complete, EchoProvider.stream

    def spy_complete(self: EchoProvider, request: ModelRequest) -> Any:
        calls.append(request)
        return complete(self, request)

    def spy_stream(self: EchoProvider, request: ModelRequest) -> Any:
        calls.append(request)
        return stream(self, request)

    monkeypatch.setattr(EchoProvider, "complete", spy_complete)
    monkeypatch.setattr(EchoProvider, "stream", spy_stream)
    return calls


def create(api: Api, **fields: Any) -> Reply:
    return api.call("responses_create", {"model": "echo", **fields})


def created(api: Api, **fields: Any) -> Response:
    reply = create(api, **fields)
    assert reply.status == 200, reply.body
    return Response.model_validate(reply.body, strict=True)


def events(reply: Reply) -> list[Any]:
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    parsed = []
    for block in reply.body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        event = EVENTS.validate_python(json.loads(lines["data"]), strict=True)
        assert event.type == lines["event"]
        parsed.append(event)
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    return parsed


def retrieve(api: Api, response_id: str) -> Reply:
    return api.call("responses_get", path={"response_id": response_id})


def input_items(api: Api, response_id: str, **query: str) -> dict[str, Any]:
    reply = api.call("responses_input_items", path={"response_id": response_id}, query=query or None)
    assert reply.status == 200, reply.body
    for item in reply.body["data"]:
        ITEM.validate_python(item, strict=True)
    return dict(reply.body)


# -- the request schema --------------------------------------------------------------------------


def test_parley_knows_every_field_of_the_installed_sdks_response_create_params() -> None:
    """Fails when the openai SDK grows a Responses field Parley does not know."""
    names: set[str] = set()
    for params in typing.get_args(response_create_params.ResponseCreateParams):
        names |= set(typing.get_type_hints(params))
    unknown = names - set(ResponseCreate.model_fields)
    assert not unknown, f"add {sorted(unknown)} to parley.domain.responses.ResponseCreate"


@pytest.mark.parametrize(
    ("fields", "param", "text"),
    [
        ({"input": "hi", "frobnicate": 1}, "frobnicate", "frobnicate"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools", "web_search"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input", "reasoning"),
        ({"input": "hi", "background": True, "stream": True}, "background", "background"),
        ({"input": "hi", "background": True, "store": False}, "store", "stored"),
        ({"input": "hi", "prompt": {"id": "pmpt_1"}}, "prompt", "prompt"),
        ({"input": "hi", "top_logprobs": 3}, "top_logprobs", "log probabilities"),
        ({"input": "hi", "conversation": "conv_x", "previous_response_id": "resp_x"}, None, "not both"),
        ({"instructions": "Be brief"}, "input", "input"),
    ],
)
def test_refusals_are_400_naming_the_field(api: Api, fields: dict[str, Any], param: str | None, text: str) -> None:
    reply = create(api, **fields)
    assert reply.status == 400, reply.body
    error = reply.body["error"]
    assert text in error["message"]
    if param is not None:
        assert str(error["param"]).startswith(param)


# -- create, retrieve, input items --------------------------------------------------------------


def test_a_string_input_is_answered_stored_and_retrieved(api: Api) -> None:
    response = created(api, input="Hello there", instructions="Be kind", metadata={"team": "support"})
    assert response.status == "completed"
    assert response.output_text == "Hello there"
    assert response.instructions == "Be kind" and response.metadata == {"team": "support"}
    assert response.usage is not None and response.usage.total_tokens > 0
    again = retrieve(api, response.id)
    assert again.status == 200, again.body
    assert Response.model_validate(again.body, strict=True) == response
    listed = input_items(api, response.id)
    assert [(i["type"], i["role"]) for i in listed["data"]] == [("message", "user")]
    assert listed["data"][0]["content"] == [{"type": "input_text", "text": "Hello there"}]


def test_a_streamed_response_emits_typed_events_and_is_stored(api: Api) -> None:
    got = events(create(api, input="one two three", stream=True))
    types = [e.type for e in got]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = "".join(e.delta for e in got if e.type == "response.output_text.delta")
    assert deltas == "one two three"
    final = got[-1].response
    assert final.status == "completed" and final.output_text == "one two three"
    stored = Response.model_validate(retrieve(api, final.id).body, strict=True)
    assert stored.output == final.output and stored.status == "completed"


def test_previous_response_id_continues_the_same_conversation(api: Api, seen: list[ModelRequest]) -> None:
    first = created(api, input="My name is Ada")
    second = created(api, input="What is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    texts = [(m.role, m.text()) for m in seen[-1].messages]
    assert texts == [("user", "My name is Ada"), ("assistant", "My name is Ada"), ("user", "What is my name?")]
    # input_items are this response's own input, not the history
    assert [i["content"][0]["text"] for i in input_items(api, second.id)["data"]] == ["What is my name?"]
    # only the newest response of a conversation can be continued: no forks
    fork = create(api, input="again", previous_response_id=first.id)
    assert fork.status == 409 and fork.body["error"]["code"] == "response_not_latest"


def test_conversation_appends_to_a_parley_conversation(api: Api, seen: list[ModelRequest]) -> None:
    conversation = api.call("conversations_create", {"title": "Support", "system_prompt": "You help."})
    conversation_id = conversation.body["id"]
    sent = api.call("messages_create", {"content": "I was charged twice"}, path={"conversation_id": conversation_id})
    assert sent.status == 200, sent.body
    response = created(api, input="Please refund", conversation={"id": conversation_id})
    assert response.conversation is not None and response.conversation.id == conversation_id
    assert [(m.role, m.text()) for m in seen[-1].messages] == [
        ("system", "You help."),
        ("user", "I was charged twice"),
        ("assistant", "I was charged twice"),
        ("user", "Please refund"),
    ]
    history = api.call("messages_list", path={"conversation_id": conversation_id}, query={"order": "asc"})
    assert [m["content"] for m in history.body["data"]] == [
        "I was charged twice",
        "I was charged twice",
        "Please refund",
        "Please refund",
    ]
    missing = create(api, input="hi", conversation="conv_01JZ00000000000000000000ZZ")
    assert missing.status == 404 and missing.body["error"]["param"] == "conversation"


def test_a_function_tool_round_trip(api: Api, seen: list[ModelRequest]) -> None:
    first = created(api, input="Paris", tools=[WEATHER], tool_choice="auto")
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"input": "Paris"}
    assert seen[-1].tools[0].function.strict is True
    final = created(
        api,
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"}],
    )
    assert final.output_text == "Sunny, 21 C"
    roles = [(m.role, bool(m.tool_calls), m.tool_call_id) for m in seen[-1].messages]
    assert roles == [("user", False, None), ("assistant", True, None), ("tool", False, call.call_id)]
    listed = input_items(api, final.id)["data"]
    assert [i["type"] for i in listed] == ["function_call_output"]


def test_a_streamed_function_call(api: Api) -> None:
    got = events(create(api, input="Oslo", tools=[WEATHER], stream=True))
    types = [e.type for e in got]
    assert "response.function_call_arguments.delta" in types
    done = next(e for e in got if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == {"input": "Oslo"} and done.name == "get_weather"
    final = got[-1].response
    assert final.output[0].type == "function_call" and final.output[0].id == done.item_id
    assert Response.model_validate(retrieve(api, final.id).body, strict=True).output == final.output


def test_a_whole_history_as_items_like_the_agents_sdk_sends(api: Api, seen: list[ModelRequest]) -> None:
    items = [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in Rome?"}]},
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_client",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}],
        },
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"input":"Rome"}'},
        {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": '{"input":"Milan"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "Hot"},
        {"type": "function_call_output", "call_id": "call_2", "output": "Warm"},
    ]
    response = created(api, input=items, tools=[WEATHER])
    assert response.output_text == "Warm"
    messages = seen[-1].messages
    assert [m.role for m in messages] == ["developer", "user", "assistant", "tool", "tool"]
    assert [c.id for c in messages[2].tool_calls or []] == ["call_1", "call_2"]
    listed = input_items(api, response.id, order="asc")["data"]
    assert [i["type"] for i in listed] == [
        "message",
        "message",
        "message",
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
    ]
    assert listed[0]["role"] == "developer" and listed[2]["role"] == "assistant"
    page = input_items(api, response.id, order="asc", limit="3", after=listed[1]["id"])
    assert [i["id"] for i in page["data"]] == [i["id"] for i in listed[2:5]] and page["has_more"] is True


def test_text_format_json_schema_becomes_the_providers_response_format(api: Api, seen: list[ModelRequest]) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    reply = create(
        api, input="{}", text={"format": {"type": "json_schema", "name": "thing", "schema": schema, "strict": True}}
    )
    assert reply.status == 200, reply.body
    response = Response.model_validate(reply.body, strict=True)
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_schema"
    sent = seen[-1].response_format
    assert sent is not None and sent.type == "json_schema"
    assert sent.json_schema == {"name": "thing", "schema": schema, "strict": True}
    # echo cannot honour it: named by its Responses name
    assert "text" in reply.headers["parley-dropped-params"].split(",")


def test_max_output_tokens_cut_is_incomplete(api: Api) -> None:
    response = created(api, input="a b c d e f g h i j k l m n o p", max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"


def test_store_false_stores_nothing(api: Api) -> None:
    response = created(api, input="secret", store=False)
    assert response.store is False and response.output_text == "secret"
    assert retrieve(api, response.id).status == 404
    follow = create(api, input="more", previous_response_id=response.id)
    assert follow.status == 404 and follow.body["error"]["param"] == "previous_response_id"


def test_delete_removes_the_response_and_the_conversation_made_for_it(api: Api) -> None:
    response = created(api, input="bye")
    reply = api.call("responses_delete", path={"response_id": response.id})
    assert reply.status == 200 and reply.body == {"id": response.id, "object": "response.deleted", "deleted": True}
    assert retrieve(api, response.id).status == 404
    assert api.call("responses_delete", path={"response_id": response.id}).status == 404
    conversations = api.call("conversations_list", query={"limit": "100"}).body["data"]
    assert all(c["metadata"].get("created_by") != "responses" for c in conversations)


def test_delete_keeps_the_history_later_responses_build_on(api: Api, seen: list[ModelRequest]) -> None:
    first = created(api, input="remember 7")
    second = created(api, input="and 8", previous_response_id=first.id)
    assert api.call("responses_delete", path={"response_id": first.id}).status == 200
    assert retrieve(api, second.id).status == 200
    created(api, input="sum?", previous_response_id=second.id)
    assert [m.text() for m in seen[-1].messages if m.role == "user"] == ["remember 7", "and 8", "sum?"]


def background(api: Api, **fields: Any) -> tuple[Response, Any]:
    """A background response as answered (before its generation ran), and its generation."""
    reply = api.call("responses_create", {"model": "echo", "background": True, **fields}, run_after=False)
    assert reply.status == 200, reply.body
    assert reply.after is not None
    return Response.model_validate(reply.body, strict=True), reply.after


def test_a_background_response_is_queued_then_generated(api: Api) -> None:
    queued, generate = background(api, input="later please")
    assert queued.status == "queued" and queued.background is True and queued.output == []
    assert Response.model_validate(retrieve(api, queued.id).body, strict=True).status == "queued"
    generate()
    done = Response.model_validate(retrieve(api, queued.id).body, strict=True)
    assert done.status == "completed" and done.output_text == "later please" and done.background is True
    again = api.call("responses_cancel", path={"response_id": queued.id})
    assert again.status == 400 and "completed" in again.body["error"]["message"]


@pytest.mark.parametrize("key", [None, "bg-key-1"])
def test_the_handler_runs_a_background_generation_after_answering(api: Api, key: str | None) -> None:
    headers = {"Idempotency-Key": key} if key else None
    body = {"model": "echo", "input": "soon", "background": True}
    reply = api.call("responses_create", body, headers=headers)
    assert reply.status == 200 and reply.body["status"] == "queued"
    done = Response.model_validate(retrieve(api, reply.body["id"]).body, strict=True)
    assert done.status == "completed" and done.output_text == "soon"
    if key:  # a retry with the key answers the same response and starts nothing
        again = api.call("responses_create", body, headers=headers)
        replayed = json.loads(again.body) if isinstance(again.body, str) else again.body  # a recorded stream
        assert again.status == 200 and replayed["id"] == reply.body["id"]


def test_cancel_a_queued_background_response(api: Api, seen: list[ModelRequest]) -> None:
    queued, generate = background(api, input="never mind")
    cancelled = api.call("responses_cancel", path={"response_id": queued.id})
    assert cancelled.status == 200, cancelled.body
    assert Response.model_validate(cancelled.body, strict=True).status == "cancelled"
    generate()
    assert seen == []  # no model call
    stored = Response.model_validate(retrieve(api, queued.id).body, strict=True)
    assert stored.status == "cancelled"
    assert api.call("responses_cancel", path={"response_id": queued.id}).body["status"] == "cancelled"
    # the conversation's reply is written back, not left pending
    conversation = next(
        c["id"]
        for c in api.call("conversations_list", query={"limit": "100"}).body["data"]
        if c["metadata"].get("created_by") == "responses"
    )
    messages = api.call("messages_list", path={"conversation_id": conversation}, query={"order": "asc"}).body["data"]
    assert [(m["role"], m["status"]) for m in messages] == [("user", "completed"), ("assistant", "incomplete")]
    assert messages[1]["error"]["code"] == "cancelled"


def test_cancel_stops_a_background_generation_mid_way(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from parley.services import responses as service

    monkeypatch.setattr(service, "CANCEL_CHECK_SECONDS", 0.0)
    queued, generate = background(api, input="one two three four five")
    words = EchoProvider.stream

    def cancelled_after_two_words(self: EchoProvider, request: ModelRequest) -> Any:
        for i, event in enumerate(words(self, request)):
            if i == 2:  # a concurrent cancel, as another request makes it
                assert api.call("responses_cancel", path={"response_id": queued.id}).status == 200
            yield event

    monkeypatch.setattr(EchoProvider, "stream", cancelled_after_two_words)
    generate()
    stored = Response.model_validate(retrieve(api, queued.id).body, strict=True)
    assert stored.status == "cancelled"
    assert stored.output_text in ("one two", "one two three")


def test_cancel_a_synchronous_response_is_400(api: Api) -> None:
    response = created(api, input="done already")
    reply = api.call("responses_cancel", path={"response_id": response.id})
    assert reply.status == 400 and "synchronous" in reply.body["error"]["message"]
    missing = api.call("responses_cancel", path={"response_id": "resp_01JZ00000000000000000000ZZ"})
    assert missing.status == 404


def test_another_projects_response_is_404(api: Api) -> None:
    response = created(api, input="mine")
    other = Principal("org_resp", "proj_other", "key_other", ("*",))
    reply = api.call("responses_get", path={"response_id": response.id}, principal=other)
    assert reply.status == 404


# -- an OpenAI-compatible provider behind the Responses API ---------------------------------------


def test_an_openai_compatible_provider_gets_the_mapped_chat_fields(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = upstream.install(monkeypatch, [openai_completion()])
    made = api.call(
        "providers_create",
        {"type": "openai", "name": "oai", "api_key": "sk-test-0000000000", "base_url": "https://api.openai.com/v1"},
    )
    assert made.status == 201, made.body
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    reply = create(
        api,
        model="oai/gpt-4o",
        input="Hi",
        instructions="Be brief",
        max_output_tokens=20,
        temperature=0.3,
        reasoning={"effort": "low"},
        service_tier="default",
        prompt_cache_key="k1",
        text={"format": {"type": "json_schema", "name": "thing", "schema": schema}, "verbosity": "low"},
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        include=["message.output_text.logprobs"],
    )
    assert reply.status == 200, reply.body
    response = Response.model_validate(reply.body, strict=True)
    assert response.output_text == "Hi" and response.model == "gpt-4o"
    sent = json.loads(seen[0].content)
    assert sent["messages"] == [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}]
    assert sent["max_completion_tokens"] == 20 and sent["temperature"] == 0.3
    assert sent["reasoning_effort"] == "low" and sent["verbosity"] == "low"
    assert sent["service_tier"] == "default" and sent["prompt_cache_key"] == "k1"
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}}
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert reply.headers["parley-dropped-params"] == "include"


def test_a_provider_failing_mid_stream_ends_with_response_failed(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    upstream.install(monkeypatch, [upstream.chunk_then_drop("Partial")])
    api.call(
        "providers_create",
        {"type": "openai", "name": "flaky", "api_key": "sk-test-0000000000", "base_url": "https://api.openai.com/v1"},
    )
    got = events(create(api, model="flaky/gpt-4o", input="Hi", stream=True))
    assert [e.type for e in got][-2:] == ["error", "response.failed"]
    failed = got[-1].response
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "server_error"
    stored = Response.model_validate(retrieve(api, failed.id).body, strict=True)
    assert stored.status == "failed" and stored.output_text == "Partial"


def test_an_empty_assistant_message_in_the_input_is_taken(api: Api) -> None:
    """Found by schemathesis: an assistant item with empty content was a 500."""
    items = [{"role": "assistant", "content": ""}, {"role": "user", "content": "Hi"}]
    assert created(api, input=items).output_text == "Hi"
    only = create(api, input=[{"type": "message", "role": "assistant", "content": ""}])
    assert only.status == 200, only.body
