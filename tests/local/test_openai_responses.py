"""Issue 17 (item 3), acceptance: the official openai SDK's Responses API and OpenAI's Agents SDK
against the local server, unchanged. Every response body and stream event is also validated
strictly with the SDK's own types, from the raw wire."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseItem, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.local.conftest import Server

pytestmark = pytest.mark.local

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
ITEM: TypeAdapter[Any] = TypeAdapter(ResponseItem)
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"input": {"type": "string"}},
        "required": ["input"],
        "additionalProperties": False,
    },
    "strict": True,
}


def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)


def strict_create(sdk: openai.OpenAI, **fields: Any) -> Response:
    """responses.create, its raw body validated strictly (and parsed as the SDK parses it)."""
    raw = sdk.responses.with_raw_response.create(**fields)
    Response.model_validate(json.loads(raw.text), strict=True)
    parsed: Response = raw.parse()
    return parsed


def strict_stream(sdk: openai.OpenAI, **fields: Any) -> list[Any]:
    """responses.create(stream=True)'s raw events, each validated strictly."""
    with sdk.responses.with_streaming_response.create(stream=True, **fields) as raw:
        blocks = raw.text().strip().split("\n\n")
    strict = []
    for block in blocks:
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        event = EVENTS.validate_python(json.loads(lines["data"]), strict=True)
        assert event.type == lines["event"]
        strict.append(event)
    assert [e.sequence_number for e in strict] == list(range(len(strict)))
    return strict


def test_create_retrieve_input_items_delete(server: Server) -> None:
    sdk = client(server)
    response = strict_create(sdk, model="echo", input="Hello there", instructions="Be kind")
    assert response.status == "completed" and response.output_text == "Hello there"
    again = sdk.responses.retrieve(response.id)
    assert again.output_text == "Hello there" and again.id == response.id
    raw = sdk.responses.with_raw_response.retrieve(response.id)
    Response.model_validate(json.loads(raw.text), strict=True)
    items = sdk.responses.input_items.list(response.id)
    assert [i.type for i in items.data] == ["message"]
    for item in httpx.get(
        f"{server.url}/v1/responses/{response.id}/input_items", headers={"Authorization": f"Bearer {server.key}"}
    ).json()["data"]:
        ITEM.validate_python(item, strict=True)
    sdk.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)


def test_stream(server: Server) -> None:
    sdk = client(server)
    events = list(sdk.responses.create(model="echo", input="one two", stream=True))  # as the SDK reads it
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "one two"
    assert events[-1].response.output_text == "one two"
    strict = strict_stream(sdk, model="echo", input="one two")
    assert [e.type for e in strict] == [e.type for e in events]


def test_previous_response_id(server: Server) -> None:
    sdk = client(server)
    first = strict_create(sdk, model="echo", input="My name is Ada")
    second = strict_create(sdk, model="echo", input="And yours?", previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.output_text == "And yours?"
    streamed = strict_stream(sdk, model="echo", input="Bye", previous_response_id=second.id)
    assert streamed[-1].response.previous_response_id == second.id


def test_conversation(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.key}"}
    conversation = httpx.post(f"{server.url}/v1/conversations", json={"title": "Support"}, headers=headers).json()
    sdk = client(server)
    response = strict_create(sdk, model="echo", input="Refund please", conversation=conversation["id"])
    assert response.conversation is not None and response.conversation.id == conversation["id"]
    history = httpx.get(
        f"{server.url}/v1/conversations/{conversation['id']}/messages", params={"order": "asc"}, headers=headers
    ).json()["data"]
    assert [(m["role"], m["content"]) for m in history] == [("user", "Refund please"), ("assistant", "Refund please")]


def test_function_tool_round_trip(server: Server) -> None:
    sdk = client(server)
    first = strict_create(sdk, model="echo", input="Paris", tools=[WEATHER])
    (call,) = first.output
    assert call.type == "function_call" and json.loads(call.arguments) == {"input": "Paris"}
    final = strict_create(
        sdk,
        model="echo",
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"}],
    )
    assert final.output_text == "Sunny, 21 C"
    events = strict_stream(sdk, model="echo", input="Oslo", tools=[WEATHER])
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == {"input": "Oslo"}


def test_the_agents_sdk_runs_an_agent_with_a_function_tool(server: Server) -> None:
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    asked: list[str] = []

    @function_tool
    def get_weather(input: str) -> str:  # noqa: A002 - echo calls tools with {"input": ...}
        """The weather in a city."""
        asked.append(input)
        return f"Sunny in {input}"

    async def run() -> Any:
        sdk = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)
        agent = Agent(
            name="weather",
            instructions="Answer with the weather.",
            tools=[get_weather],
            model=OpenAIResponsesModel(model="echo", openai_client=sdk),
        )
        try:
            return await Runner.run(agent, "Paris")
        finally:
            await sdk.close()

    result = asyncio.run(run())
    assert asked == ["Paris"]
    assert result.final_output == "Sunny in Paris"
    for raw in result.raw_responses:
        assert raw.response_id is not None


def poll(sdk: openai.OpenAI, response_id: str, until: tuple[str, ...]) -> Response:
    """Retrieve the response until its status is one of `until` (bounded: 300 tries)."""
    for _ in range(300):
        current = sdk.responses.retrieve(response_id)
        if current.status in until:
            return current
        time.sleep(0.1)
    raise AssertionError(f"{response_id} stayed {current.status}")


def test_background_response_and_cancel(server: Server) -> None:
    sdk = client(server)
    queued = strict_create(sdk, model="echo", input="in the background", background=True)
    assert queued.status == "queued" and queued.background is True
    done = poll(sdk, queued.id, ("completed",))
    assert done.output_text == "in the background"
    Response.model_validate(json.loads(sdk.responses.with_raw_response.retrieve(queued.id).text), strict=True)
    with pytest.raises(openai.BadRequestError):
        sdk.responses.cancel(done.id)
    # the echo model pauses 200 ms between words: this one is still being written when cancelled
    long = strict_create(sdk, model="echo", input=" ".join(["word"] * 40), background=True)
    cancelled = sdk.responses.cancel(long.id)
    assert cancelled.status == "cancelled"
    stored = sdk.responses.retrieve(long.id)
    assert stored.status == "cancelled" and len(stored.output_text.split()) < 40
    with pytest.raises(openai.BadRequestError):
        sdk.responses.cancel(strict_create(sdk, model="echo", input="now").id)
