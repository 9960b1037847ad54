"""The official openai SDK against the local server: tools round trip, streamed tool calls."""

from __future__ import annotations

import json

import openai
import pytest

from tests.local.conftest import Server

pytestmark = pytest.mark.local

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]},
    },
}


def test_tools_round_trip(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)
    messages: list[dict[str, object]] = [{"role": "user", "content": "Paris"}]
    first = client.chat.completions.create(model="echo", messages=messages, tools=[WEATHER], tool_choice="auto")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"input": "Paris"}

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"})
    final = client.chat.completions.create(model="echo", messages=messages, tools=[WEATHER])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "Sunny, 21 C"


def test_streamed_tool_call_reassembles(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)
    stream = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "Oslo"}], tools=[WEATHER], stream=True
    )
    name, arguments, finish = "", "", None
    for chunk in stream:
        if not chunk.choices:
            continue
        for piece in chunk.choices[0].delta.tool_calls or []:
            assert piece.function is not None
            name += piece.function.name or ""
            arguments += piece.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert (name, json.loads(arguments), finish) == ("get_weather", {"input": "Oslo"}, "tool_calls")


def test_typed_errors_for_provider_routes(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"provider_id": "aip_01JZ00000000000000000000AA"},
        )
    assert refused.value.code == "provider_not_found"
    with pytest.raises(openai.BadRequestError) as rag:
        client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "x"}], extra_body={"use_rag": True, "index_id": "idx_1"}
        )
    assert rag.value.code == "index_not_found"


def test_embeddings_with_the_sdk_floats_and_base64(server: Server) -> None:
    from openai.types import CreateEmbeddingResponse

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)
    texts = ["How do I get a refund?", "Refunds are paid within 30 days."]
    raw = client.embeddings.with_raw_response.create(model="local", input=texts, encoding_format="float")
    floats = CreateEmbeddingResponse.model_validate(raw.http_response.json(), strict=True)
    assert [d.index for d in floats.data] == [0, 1]
    assert all(len(d.embedding) == 256 for d in floats.data)
    assert floats.model == "local"
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0
    # the SDK's default: it asks for base64 and decodes it (little-endian float32) itself
    decoded = client.embeddings.create(model="local", input=texts)
    CreateEmbeddingResponse.model_validate(decoded.model_dump(), strict=True)
    for ours, theirs in zip(floats.data, decoded.data, strict=True):
        assert all(abs(a - b) < 1e-6 for a, b in zip(ours.embedding, theirs.embedding, strict=True))
    shorter = client.embeddings.create(model="local", input="Billing", dimensions=64)
    assert len(shorter.data[0].embedding) == 64


def test_embeddings_errors_are_typed(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="local", input=[])
    with pytest.raises(openai.BadRequestError) as too_long:
        client.embeddings.create(model="local", input="word " * 9000)
    assert too_long.value.code == "input_too_long"
