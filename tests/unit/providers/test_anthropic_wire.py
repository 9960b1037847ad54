"""The anthropic adapter on the wire: the exact Messages API requests it sends and how it reads
recorded responses, event streams and failures (httpx.MockTransport, no network).

Payload shapes follow the Messages API reference and the recordings in anthropic-sdk-python's
tests (tests/lib/streaming/fixtures, tests/lib/_parse/__inline_snapshot__).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.domain.chat import (
    ChatMessage,
    FunctionCall,
    FunctionDefinition,
    ImagePart,
    ImageUrl,
    NamedFunction,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolChoiceFunction,
    Usage,
)
from parley.domain.errors import (
    InvalidRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
)
from parley.providers.anthropic import AnthropicProvider
from parley.providers.base import Finish, ModelRequest, StreamEvent, TextDelta, ToolCallDelta
from parley.providers.http import make_client

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
KEY = "sk-ant-api03-Zq1vX9TESTKEYnotreal-8aF3kLmN0pQrStUvWxYz"
MODEL = "claude-sonnet-4-5-20250929"
URL = "https://api.anthropic.com/v1/messages"

Handler = Callable[[httpx.Request], httpx.Response]


class Wire:
    """A MockTransport that records each request and answers with the handler's response."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self._handler = handler

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self._handler(request)

    @property
    def body(self) -> dict[str, Any]:
        assert len(self.requests) == 1
        document: dict[str, Any] = json.loads(self.requests[0].content)
        return document


def provider_for(handler: Handler, **kwargs: Any) -> tuple[AnthropicProvider, Wire]:
    wire = Wire(handler)
    client = make_client(httpx.MockTransport(wire))
    return AnthropicProvider(api_key=KEY, client=client, **kwargs), wire


def answer(status: int, document: object, headers: dict[str, str] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status, json=document, headers={"request-id": "req_011CSHoEeqs5C35K2UUqR7Fy", **(headers or {})}
        )

    return handler


class ChunkStream(httpx.SyncByteStream):
    """A response body delivered in chunks, optionally failing after them; records its closing."""

    def __init__(self, chunks: list[bytes], fail: Exception | None = None) -> None:
        self.chunks = chunks
        self.fail = fail
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.fail is not None:
            raise self.fail

    def close(self) -> None:
        self.closed = True


def sse(stream: httpx.SyncByteStream) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream; charset=utf-8"}, stream=stream)

    return handler


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn", **usage: int) -> dict[str, Any]:
    """A Messages API response body as recorded (claude-sonnet-4-5, standard tier)."""
    return {
        "model": MODEL,
        "id": "msg_01T4jd6NyD9xGGtTPDC4ogy5",
        "type": "message",
        "role": "assistant",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 6,
            "service_tier": "standard",
            **usage,
        },
    }


def error_body(kind: str, text: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": text}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def ask(*messages: ChatMessage, **kwargs: Any) -> ModelRequest:
    return ModelRequest(model=MODEL, messages=messages or (user("Hello"),), **kwargs)


def drain(events: Iterator[StreamEvent]) -> tuple[list[StreamEvent], ProviderError]:
    """The events a stream yielded before it raised, and the error."""
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderError) as info:
        seen.extend(events)
    return seen, info.value


def send_one(provider: AnthropicProvider, streaming: bool) -> None:
    """One request, consumed to its end: streamed, or not."""
    if streaming:
        list(provider.stream(ask()))
    else:
        provider.complete(ask())


WEATHER = Tool(
    type="function",
    function=FunctionDefinition(
        name="get_weather",
        description="The current weather in a city.",
        parameters={"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    ),
)
CLOCK = Tool(type="function", function=FunctionDefinition(name="get_time"))


# -- a plain reply ------------------------------------------------------------------------------


def test_reply_request_on_the_wire_and_mapped_reply_with_cache_usage() -> None:
    body = message(
        [{"type": "text", "text": "The capital of France"}, {"type": "text", "text": " is Paris."}],
        input_tokens=21,
        cache_creation_input_tokens=1500,
        cache_read_input_tokens=3000,
        output_tokens=9,
    )
    provider, wire = provider_for(
        answer(200, body),
        headers={
            "anthropic-beta": "token-efficient-tools-2025-02-19",
            "X-Api-Key": "sk-other",
            "Content-Type": "text/plain",
        },
    )
    reply = provider.complete(
        ask(
            ChatMessage(role="system", content="You are terse."),
            user("What is the capital of France?"),
            temperature=1.6,
            top_p=0.9,
            stop=["\n\nHuman:", "END"],
            user="user-42",
            seed=7,
            presence_penalty=0.5,
            frequency_penalty=0.5,
            response_format=ResponseFormat(type="json_object"),
        )
    )

    sent = wire.requests[0]
    assert sent.method == "POST"
    assert str(sent.url) == URL
    assert sent.headers.get_list("x-api-key") == [KEY]
    assert sent.headers.get_list("anthropic-version") == ["2023-06-01"]
    assert sent.headers.get_list("content-type") == ["application/json"]
    assert sent.headers["anthropic-beta"] == "token-efficient-tools-2025-02-19"
    assert "authorization" not in sent.headers
    assert wire.body == {
        "model": MODEL,
        "max_tokens": 4096,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}],
        "temperature": 1.0,  # clamped into Anthropic's 0..1
        "top_p": 0.9,
        "stop_sequences": ["\n\nHuman:", "END"],
        "metadata": {"user_id": "user-42"},
    }

    assert reply.content == "The capital of France is Paris."
    assert reply.finish_reason == "stop"
    assert reply.tool_calls == ()
    assert reply.usage == Usage.of(21 + 1500 + 3000, 9, cached=3000)
    assert reply.usage.total_tokens == 4530


def test_max_tokens_version_and_base_url_are_honoured_and_absent_fields_stay_absent() -> None:
    provider, wire = provider_for(
        answer(200, message([{"type": "text", "text": "Hi"}])),
        base_url="https://gateway.example.com/anthropic/",
        version="2024-01-01",
        default_max_tokens=1024,
    )
    provider.complete(ask(user("Hi"), temperature=0.3))
    assert str(wire.requests[0].url) == "https://gateway.example.com/anthropic/v1/messages"
    assert wire.requests[0].headers["anthropic-version"] == "2024-01-01"
    assert wire.body == {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "temperature": 0.3,
    }

    provider.complete(ask(user("Hi"), max_tokens=50))
    assert json.loads(wire.requests[1].content)["max_tokens"] == 50


def test_usage_without_cache_fields_reports_no_cached_tokens() -> None:
    body = message([{"type": "text", "text": "Hi"}])
    body["usage"] = {"input_tokens": 11, "output_tokens": 3}
    provider, _ = provider_for(answer(200, body))
    assert provider.complete(ask()).usage == Usage.of(11, 3)
    assert provider.complete(ask()).usage.prompt_tokens_details is None


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish: str) -> None:
    provider, _ = provider_for(answer(200, message([{"type": "text", "text": "x"}], stop_reason)))
    assert provider.complete(ask()).finish_reason == finish


# -- message translation ------------------------------------------------------------------------


def test_messages_translate_to_alternating_content_blocks() -> None:
    provider, wire = provider_for(answer(200, message([{"type": "text", "text": "Done."}])))
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    provider.complete(
        ask(
            ChatMessage(role="system", content="Rule one."),
            ChatMessage(role="developer", content=[TextPart(type="text", text="Rule two.")]),
            ChatMessage(
                role="user",
                content=[
                    TextPart(type="text", text="Compare these."),
                    ImagePart(type="image_url", image_url=ImageUrl(url=f"data:image/png;base64,{png}", detail="low")),
                    ImagePart(type="image_url", image_url=ImageUrl(url="https://example.com/cat.jpg")),
                ],
            ),
            user("Then check Paris."),
            ChatMessage(
                role="assistant",
                content="Let me check.",
                tool_calls=[
                    ToolCall(
                        id="toolu_01A", function=FunctionCall(name="get_weather", arguments='{"location": "Paris"}')
                    ),
                    ToolCall(id="toolu_01B", function=FunctionCall(name="get_time", arguments="{}")),
                ],
            ),
            ChatMessage(role="tool", tool_call_id="toolu_01A", content="18°C, cloudy"),
            ChatMessage(role="tool", tool_call_id="toolu_01B", content=[TextPart(type="text", text="14:05")]),
            ChatMessage(role="developer", content="Rule three."),
            user("Summarize."),
        )
    )
    assert wire.body["system"] == "Rule one.\n\nRule two.\n\nRule three."
    assert wire.body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare these."},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "Then check Paris."},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"location": "Paris"}},
                {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18°C, cloudy"},
                {"type": "tool_result", "tool_use_id": "toolu_01B", "content": [{"type": "text", "text": "14:05"}]},
                {"type": "text", "text": "Summarize."},
            ],
        },
    ]


def test_tool_results_lead_a_merged_user_turn_and_assistant_turns_merge() -> None:
    provider, wire = provider_for(answer(200, message([{"type": "text", "text": "ok"}])))
    call = ToolCall(id="toolu_01C", function=FunctionCall(name="get_time", arguments=""))
    provider.complete(
        ask(
            user("Time?"),
            ChatMessage(role="assistant", content="Sure."),
            ChatMessage(role="assistant", tool_calls=[call]),
            user("Quickly, please."),
            ChatMessage(role="tool", tool_call_id="toolu_01C", content="09:00"),
        )
    )
    assert wire.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Time?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Sure."},
                {"type": "tool_use", "id": "toolu_01C", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01C", "content": "09:00"},
                {"type": "text", "text": "Quickly, please."},
            ],
        },
    ]
    assert "system" not in wire.body


@pytest.mark.parametrize("arguments", ['{"location": "Par', "[1, 2]", "not json"])
def test_tool_call_arguments_that_are_not_a_json_object_are_refused_before_sending(arguments: str) -> None:
    provider, wire = provider_for(answer(200, message([])))
    call = ToolCall(id="toolu_01D", function=FunctionCall(name="get_weather", arguments=arguments))
    with pytest.raises(InvalidRequest) as info:
        provider.complete(ask(user("Weather?"), ChatMessage(role="assistant", tool_calls=[call])))
    assert info.value.param == "messages"
    assert "messages[1].tool_calls[0]" in info.value.message
    assert wire.requests == []


@pytest.mark.parametrize("url", ["data:image/png,rawbytes", "ftp://example.com/cat.png", "data:;base64,AAAA"])
def test_unusable_image_urls_are_refused(url: str) -> None:
    provider, wire = provider_for(answer(200, message([])))
    part = ImagePart(type="image_url", image_url=ImageUrl(url=url))
    with pytest.raises(InvalidRequest) as info:
        provider.complete(ask(ChatMessage(role="user", content=[part])))
    assert info.value.param == "messages"
    assert wire.requests == []


# -- tools ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            ToolChoiceFunction(type="function", function=NamedFunction(name="get_weather")),
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        (
            ToolChoiceFunction(type="function", function=NamedFunction(name="get_weather")),
            False,
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_tools_and_tool_choice_on_the_wire(
    tool_choice: str | ToolChoiceFunction | None, parallel: bool | None, expected: dict[str, Any] | None
) -> None:
    provider, wire = provider_for(answer(200, message([{"type": "text", "text": "ok"}])))
    provider.complete(
        ask(user("Weather in Paris?"), tools=[WEATHER, CLOCK], tool_choice=tool_choice, parallel_tool_calls=parallel)
    )
    assert wire.body["tools"] == [
        {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "input_schema": {
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
            },
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert wire.body.get("tool_choice") == expected


def test_tool_use_reply_becomes_tool_calls() -> None:
    body = message(
        [
            {"type": "text", "text": "I'll look that up."},
            {
                "type": "tool_use",
                "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn",
                "name": "get_weather",
                "input": {"location": "Paris, France"},
            },
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_time", "input": {}},
        ],
        "tool_use",
        input_tokens=377,
        output_tokens=65,
    )
    provider, _ = provider_for(answer(200, body))
    reply = provider.complete(ask(user("Weather and time in Paris?"), tools=[WEATHER, CLOCK], tool_choice="auto"))
    assert reply.finish_reason == "tool_calls"
    assert reply.content == "I'll look that up."
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in reply.tool_calls] == [
        ("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather", {"location": "Paris, France"}),
        ("toolu_01A09q90qw90lq917835lq9", "get_time", {}),
    ]
    assert reply.tool_calls[0].type == "function"
    assert reply.usage == Usage.of(377, 65, cached=0)


def test_tool_use_reply_without_text_has_null_content() -> None:
    block = {"type": "tool_use", "id": "toolu_01X", "name": "get_time", "input": {"tz": "UTC"}}
    provider, _ = provider_for(answer(200, message([block], "tool_use")))
    reply = provider.complete(ask(tools=[CLOCK], tool_choice="required"))
    assert reply.content is None
    assert reply.tool_calls[0].function.arguments == '{"tz": "UTC"}'


# -- streaming ------------------------------------------------------------------------------------


def test_stream_yields_text_in_order_then_finish_with_cumulative_usage() -> None:
    body = ChunkStream([fixture("stream_text.txt")])
    provider, wire = provider_for(sse(body))
    events = list(provider.stream(ask(ChatMessage(role="system", content="Be kind."), user("Hello"), max_tokens=8)))

    assert wire.body == {
        "model": MODEL,
        "max_tokens": 8,
        "system": "Be kind.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "stream": True,
    }
    assert wire.requests[0].headers["x-api-key"] == KEY
    assert events[:-1] == [TextDelta("Hello"), TextDelta(" there"), TextDelta("! How can I help?")]
    # message_delta's cumulative usage supersedes message_start's input counts.
    assert events[-1] == Finish("length", Usage.of(40 + 12 + 7, 8, cached=7))
    assert body.closed


def test_stream_tool_use_fragments_are_indexed_by_tool_call() -> None:
    body = fixture("stream_tool_use.txt")
    # Split mid-line and mid-event to show the parser reads incrementally across chunks.
    provider, wire = provider_for(sse(ChunkStream([body[:97], body[97:1200], body[1200:]])))
    events = list(provider.stream(ask(user("Weather and time in Paris?"), tools=[WEATHER, CLOCK])))

    assert wire.body["stream"] is True
    assert wire.body["tools"][0]["name"] == "get_weather"
    assert events == [
        TextDelta("I"),
        TextDelta("'ll check the weather and the time in Paris."),
        ToolCallDelta(index=0, id="toolu_01NRLabsLyVHZPKxbKvkfSMn", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"locati'),
        ToolCallDelta(index=0, arguments='on": "P'),
        ToolCallDelta(index=0, arguments='aris"}'),
        ToolCallDelta(index=1, id="toolu_01A09q90qw90lq917835lq9", name="get_time"),
        ToolCallDelta(index=1, arguments="{}"),  # no input streamed: an empty object
        Finish("tool_calls", Usage.of(472 + 128, 89, cached=128)),
    ]
    assert json.loads("".join(e.arguments for e in events if isinstance(e, ToolCallDelta) and e.index == 0)) == {
        "location": "Paris"
    }


def test_stream_consumer_stopping_early_closes_the_response() -> None:
    body = ChunkStream([fixture("stream_text.txt")])
    provider, _ = provider_for(sse(body))
    events = provider.stream(ask())
    assert next(events) == TextDelta("Hello")
    events.close()  # type: ignore[attr-defined]
    assert body.closed


def test_error_event_mid_stream_raises_a_retryable_error_after_the_earlier_deltas() -> None:
    body = ChunkStream([fixture("stream_error_overloaded.txt")])
    provider, _ = provider_for(sse(body))
    seen, error = drain(provider.stream(ask()))
    assert seen == [TextDelta("Once upon"), TextDelta(" a time")]
    assert type(error) is ProviderError
    assert error.retryable
    assert "Overloaded" in error.message
    assert body.closed


@pytest.mark.parametrize(
    ("kind", "error_class", "retryable"),
    [
        ("rate_limit_error", ProviderRateLimited, True),
        ("api_error", ProviderError, True),
        ("invalid_request_error", ProviderRejected, False),
    ],
)
def test_error_events_are_classified_by_type(kind: str, error_class: type[ProviderError], retryable: bool) -> None:
    event = {"type": "error", "error": {"type": kind, "message": "Something"}}
    text = f"event: error\ndata: {json.dumps(event)}\n\n"
    provider, _ = provider_for(sse(ChunkStream([text.encode()])))
    seen, error = drain(provider.stream(ask()))
    assert (seen, type(error), error.retryable) == ([], error_class, retryable)


def test_connection_drop_mid_stream_raises_provider_error_after_the_earlier_deltas() -> None:
    recorded = fixture("stream_text.txt")
    cut = recorded.index(b"event: content_block_delta", recorded.index(b'"text":" there"'))
    drop = httpx.RemoteProtocolError(
        "peer closed connection without sending complete message body (incomplete chunked read)"
    )
    body = ChunkStream([recorded[:cut]], fail=drop)
    provider, _ = provider_for(sse(body))
    seen, error = drain(provider.stream(ask()))
    assert seen == [TextDelta("Hello"), TextDelta(" there")]
    assert type(error) is ProviderError
    assert error.code == "provider_unreachable"
    assert error.retryable
    assert body.closed


def test_stream_ending_before_message_stop_is_an_error() -> None:
    recorded = fixture("stream_text.txt")
    body = ChunkStream([recorded[: recorded.index(b"event: message_delta")]])
    provider, _ = provider_for(sse(body))
    seen, error = drain(provider.stream(ask()))
    assert [e for e in seen if isinstance(e, Finish)] == []
    assert "message_stop" in error.message


def test_stream_http_error_reads_the_body_for_the_upstream_message() -> None:
    body = ChunkStream(
        [json.dumps(error_body("invalid_request_error", "messages: at least one message is required")).encode()]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, headers={"content-type": "application/json"}, stream=body)

    provider, _ = provider_for(handler)
    seen, error = drain(provider.stream(ask()))
    assert seen == []
    assert isinstance(error, ProviderRejected)
    assert "messages: at least one message is required" in error.message
    assert body.closed


# -- HTTP and transport errors --------------------------------------------------------------------


def test_400_is_rejected_with_the_upstream_message() -> None:
    text = (
        "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens "
        "for claude-sonnet-4-5-20250929"
    )
    provider, _ = provider_for(answer(400, error_body("invalid_request_error", text)))
    with pytest.raises(ProviderRejected) as info:
        provider.complete(ask(max_tokens=100000))
    assert text in info.value.message
    assert (info.value.upstream_status, info.value.retryable) == (400, False)


def test_401_is_an_auth_failure() -> None:
    provider, _ = provider_for(answer(401, error_body("authentication_error", "invalid x-api-key")))
    with pytest.raises(ProviderError) as info:
        provider.complete(ask())
    assert info.value.code == "provider_auth_failed"
    assert not info.value.retryable


def test_429_is_rate_limited_with_retry_after() -> None:
    body = error_body("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit")
    provider, _ = provider_for(answer(429, body, {"retry-after": "17", "anthropic-ratelimit-requests-remaining": "0"}))
    with pytest.raises(ProviderRateLimited) as info:
        provider.complete(ask())
    assert info.value.retry_after == 17.0
    assert info.value.retryable


@pytest.mark.parametrize("streaming", [False, True])
def test_529_overloaded_is_retryable(streaming: bool) -> None:
    provider, _ = provider_for(answer(529, error_body("overloaded_error", "Overloaded")))
    with pytest.raises(ProviderError) as info:
        send_one(provider, streaming)
    assert info.value.retryable
    assert info.value.upstream_status == 529
    assert "Overloaded" in info.value.message


@pytest.mark.parametrize("streaming", [False, True])
def test_timeout_is_a_provider_timeout(streaming: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("The read operation timed out", request=request)

    provider, _ = provider_for(handler)
    with pytest.raises(ProviderTimeout) as info:
        send_one(provider, streaming)
    assert info.value.retryable


def test_connection_failure_is_retryable_and_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    provider, _ = provider_for(handler)
    with pytest.raises(ProviderError) as info:
        provider.complete(ask())
    assert (info.value.code, info.value.retryable) == ("provider_unreachable", True)


def test_a_200_that_is_not_json_is_a_provider_error() -> None:
    provider, _ = provider_for(lambda request: httpx.Response(200, text="<html>502 Bad Gateway</html>"))
    with pytest.raises(ProviderError):
        provider.complete(ask())


# -- the key stays secret -------------------------------------------------------------------------


def _raise_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectTimeout(f"timed out connecting with {request.headers['x-api-key']}", request=request)


def _echo_key_event(request: httpx.Request) -> httpx.Response:
    text = f'event: error\ndata: {{"type":"error","error":{{"type":"api_error","message":"bad key {KEY}"}}}}\n\n'
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=ChunkStream([text.encode()]))


@pytest.mark.parametrize(
    ("handler", "streaming"),
    [
        (answer(401, error_body("authentication_error", f"invalid x-api-key: {KEY}")), False),
        (answer(401, error_body("authentication_error", f"invalid x-api-key: {KEY}")), True),
        (answer(400, error_body("invalid_request_error", "prompt is too long")), False),
        (answer(529, error_body("overloaded_error", "Overloaded")), True),
        (_raise_timeout, False),
        (_raise_timeout, True),
        (_echo_key_event, True),
        (sse(ChunkStream([b"event: ping\n"], fail=httpx.ReadError("connection reset"))), True),
    ],
)
def test_the_api_key_never_appears_in_an_error(handler: Handler, streaming: bool) -> None:
    provider, _ = provider_for(handler)
    with pytest.raises(ProviderError) as info:
        send_one(provider, streaming)
    error: BaseException | None = info.value
    while error is not None:
        # Nothing chained either: an httpx exception would carry the request and its headers.
        assert not isinstance(error, httpx.HTTPError)
        assert KEY not in str(error)
        assert KEY not in repr(error)
        assert KEY not in repr(error.args)
        assert KEY not in str(getattr(error, "message", ""))
        error = error.__cause__ or error.__context__
    assert KEY not in repr(provider)


def test_a_line_separator_inside_a_text_delta_stays_in_its_text() -> None:
    text = "a\u2028b\u2029c"
    events = [
        ("message_start", {"type": "message_start", "message": message([], stop_reason=None, input_tokens=3)}),  # type: ignore[arg-type]
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    raw = "".join(f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n" for name, data in events).encode()
    provider, _ = provider_for(sse(ChunkStream([raw[:150], raw[150:]])))
    streamed = list(provider.stream(ask(user("Hello"))))
    assert streamed[0] == TextDelta(text)
    assert isinstance(streamed[-1], Finish)


@pytest.mark.parametrize("streaming", [False, True])
def test_extra_header_values_are_sent_and_redacted_from_errors(streaming: bool) -> None:
    value = "goog-0123456789-secret"
    provider, wire = provider_for(
        answer(403, error_body("permission_error", f"key {value} lacks access")), headers={"X-Goog-Api-Key": value}
    )
    with pytest.raises(ProviderError) as info:
        send_one(provider, streaming)
    assert wire.requests[0].headers["x-goog-api-key"] == value
    assert value not in info.value.message
    assert "[redacted]" in info.value.message
