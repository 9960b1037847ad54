"""Wire tests for the openai adapter: the exact requests it sends and how it reads OpenAI's
(and compatible servers') answers, over httpx.MockTransport.

The payloads under fixtures/openai/ follow the shapes of recorded OpenAI Chat Completions
responses and streams (chat.completion, chat.completion.chunk with `usage: null` until the
usage chunk, tool calls streamed in argument fragments) and of Azure OpenAI's documented
stream (prompt annotations before the first choice, filter annotations without a delta).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.domain.chat import ChatMessage, FunctionCall, ResponseFormat, Tool, ToolCall, ToolChoiceFunction, Usage
from parley.domain.errors import ProviderError, ProviderRateLimited, ProviderRejected, ProviderTimeout
from parley.domain.tokens import estimate_messages, estimate_text
from parley.providers.base import Finish, ModelRequest, StreamEvent, TextDelta, ToolCallDelta
from parley.providers.http import make_client
from parley.providers.openai import OpenAIProvider

FIXTURES = Path(__file__).parent / "fixtures" / "openai"
KEY = "sk-proj-T3stK3yDoN0tL3ak-9f8e7d6c5b4a3210"
SSE = {"content-type": "text/event-stream; charset=utf-8"}

Handler = Callable[[httpx.Request], httpx.Response]


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sse(*payloads: dict[str, Any] | str) -> bytes:
    """An event stream: each payload as one `data:` event (strings verbatim)."""
    return b"".join(f"data: {p if isinstance(p, str) else json.dumps(p)}\n\n".encode() for p in payloads)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1755002500,
        "model": "m",
        "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


class Recorder:
    """A MockTransport handler that keeps the requests it answered."""

    def __init__(self, answer: Handler | httpx.Response) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.answer(request) if callable(self.answer) else self.answer

    @property
    def request(self) -> httpx.Request:
        assert len(self.requests) == 1
        return self.requests[0]

    @property
    def body(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.request.content)
        return document


class Chunks(httpx.SyncByteStream):
    """A response body that arrives in pieces, may break off, and records being closed."""

    def __init__(self, parts: list[bytes], error: Exception | None = None) -> None:
        self.parts = parts
        self.error = error
        self.sent = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for part in self.parts:
            self.sent += 1
            yield part
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True


def provider(handler: Handler, **options: Any) -> OpenAIProvider:
    options.setdefault("api_key", KEY)
    return OpenAIProvider(client=make_client(httpx.MockTransport(handler)), **options)


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def request(**fields: Any) -> ModelRequest:
    fields.setdefault("model", "gpt-4o")
    fields.setdefault("messages", [user("What is the capital of France?")])
    return ModelRequest(**fields)


def collect(events: Iterator[StreamEvent]) -> tuple[list[StreamEvent], ProviderError | None]:
    """The events a stream yielded, and the error it ended with (if any)."""
    seen: list[StreamEvent] = []
    try:
        for event in events:
            seen.append(event)
    except ProviderError as error:
        return seen, error
    return seen, None


# -- complete: the request ------------------------------------------------------------------------


def test_complete_sends_the_openai_request_and_maps_the_reply() -> None:
    recorder = Recorder(httpx.Response(200, content=fixture("completion_text.json")))
    reply = provider(recorder).complete(
        request(
            messages=[
                ChatMessage(role="developer", content="Answer in one sentence."),
                user("What is the capital of France?"),
            ],
            temperature=0.2,
            top_p=0.9,
            max_tokens=64,
            stop=["\n\n", "END"],
            response_format=ResponseFormat(type="json_object"),
            user="user-42",
            seed=7,
            presence_penalty=0.5,
            frequency_penalty=-0.5,
        )
    )

    sent = recorder.request
    assert sent.method == "POST"
    assert str(sent.url) == "https://api.openai.com/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert "api-key" not in sent.headers
    assert recorder.body == {
        "model": "gpt-4o",
        "messages": [
            {"role": "developer", "content": "Answer in one sentence."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        # OpenAI's own API: the current name (reasoning models refuse max_tokens).
        "max_completion_tokens": 64,
        "stop": ["\n\n", "END"],
        "response_format": {"type": "json_object"},
        "user": "user-42",
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
    }

    assert reply.content == "The capital of France is Paris."
    assert reply.finish_reason == "stop"
    assert reply.tool_calls == ()
    assert reply.usage == Usage.of(2006, 8, 1920, 0)
    assert reply.system_fingerprint == "fp_07871e2ad8"
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 1920


def test_only_the_fields_that_are_set_are_sent() -> None:
    recorder = Recorder(httpx.Response(200, content=fixture("completion_text.json")))
    provider(recorder).complete(request())
    assert recorder.body == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    }


def test_other_hosts_get_max_tokens_and_the_system_role() -> None:
    recorder = Recorder(httpx.Response(200, content=fixture("completion_text.json")))
    groq = provider(recorder, base_url="https://api.groq.com/openai/v1/")
    groq.complete(
        request(
            model="llama-3.3-70b-versatile",
            messages=[ChatMessage(role="developer", content="Be brief."), user("Hi")],
            max_tokens=100,
        )
    )
    assert str(recorder.request.url) == "https://api.groq.com/openai/v1/chat/completions"
    assert recorder.body["max_tokens"] == 100
    assert "max_completion_tokens" not in recorder.body
    # Compatible servers mostly do not know OpenAI's developer role.
    assert recorder.body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_image_parts_and_names_are_serialized_as_openai_expects() -> None:
    recorder = Recorder(httpx.Response(200, content=fixture("completion_text.json")))
    message = ChatMessage.model_validate(
        {
            "role": "user",
            "name": "ada",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        }
    )
    provider(recorder).complete(request(messages=[message]))
    assert recorder.body["messages"] == [
        {
            "role": "user",
            "name": "ada",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        }
    ]


# -- Azure OpenAI, local servers, headers -----------------------------------------------------------


def test_azure_uses_the_api_key_header_and_api_version() -> None:
    recorder = Recorder(httpx.Response(200, content=fixture("completion_azure.json")))
    azure = provider(
        recorder,
        base_url="https://parley-test.openai.azure.com/openai/deployments/gpt-4o-prod",
        api_version="2024-10-21",
    )
    reply = azure.complete(request(model="gpt-4o-prod", max_tokens=50))

    sent = recorder.request
    assert sent.url.scheme == "https"
    assert sent.url.host == "parley-test.openai.azure.com"
    assert sent.url.path == "/openai/deployments/gpt-4o-prod/chat/completions"
    assert dict(sent.url.params) == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == KEY
    assert "authorization" not in sent.headers
    assert recorder.body["max_completion_tokens"] == 50
    assert "max_tokens" not in recorder.body

    assert reply.content == "Hello! How can I help you today?"
    assert reply.finish_reason == "stop"
    assert reply.usage == Usage.of(19, 9, 0, 0)


def test_no_api_key_sends_no_auth_header() -> None:
    recorder = Recorder(httpx.Response(200, content=fixture("completion_text.json")))
    ollama = provider(recorder, api_key=None, base_url="http://localhost:11434/v1")
    ollama.complete(request(model="llama3.2"))
    assert str(recorder.request.url) == "http://localhost:11434/v1/chat/completions"
    assert "authorization" not in recorder.request.headers
    assert "api-key" not in recorder.request.headers


def test_extra_headers_are_added_but_never_replace_the_key() -> None:
    recorder = Recorder(httpx.Response(200, content=fixture("completion_text.json")))
    openrouter = provider(
        recorder,
        base_url="https://openrouter.ai/api/v1",
        headers={
            "HTTP-Referer": "https://parley.example",
            "X-Title": "Parley",
            "authorization": "Bearer someone-else",
            "Api-Key": "another",
        },
    )
    openrouter.complete(request(model="openai/gpt-4o"))
    headers = recorder.request.headers
    assert headers["http-referer"] == "https://parley.example"
    assert headers["x-title"] == "Parley"
    assert headers.get_list("authorization") == [f"Bearer {KEY}"]
    assert "api-key" not in headers


# -- tool calls ------------------------------------------------------------------------------------

WEATHER = Tool.model_validate(
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "default": None}},
                "required": ["city"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }
)


def test_tool_call_round_trip() -> None:
    recorder = Recorder(httpx.Response(200, content=fixture("completion_tool_calls.json")))
    messages = [
        user("Weather in Paris?"),
        ChatMessage(
            role="assistant",
            content=None,
            tool_calls=[
                ToolCall(id="call_abc123", function=FunctionCall(name="get_weather", arguments='{"city":"Paris"}'))
            ],
        ),
        ChatMessage(role="tool", tool_call_id="call_abc123", content='{"temp_c": 21}'),
        user("And the time there?"),
    ]
    reply = provider(recorder).complete(
        request(
            model="gpt-4.1",
            messages=messages,
            tools=[WEATHER],
            tool_choice=ToolChoiceFunction.model_validate({"type": "function", "function": {"name": "get_weather"}}),
            parallel_tool_calls=True,
        )
    )

    body = recorder.body
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc123", "content": '{"temp_c": 21}'},
        {"role": "user", "content": "And the time there?"},
    ]
    # The tool goes out as declared, JSON-schema nulls included.
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "default": None}},
                    "required": ["city"],
                    "additionalProperties": False,
                },
                "strict": True,
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is True

    assert reply.finish_reason == "tool_calls"
    assert reply.content is None
    assert reply.tool_calls == (
        ToolCall(
            id="call_Wq3ZkP0sLm8vTn2bXc5yHd1R",
            function=FunctionCall(name="get_weather", arguments='{"city":"Paris","unit":"c"}'),
        ),
        ToolCall(
            id="call_Jf7UeN4aQr9gMw1kVs6tBo3P",
            function=FunctionCall(name="get_time", arguments='{"timezone":"Europe/Paris"}'),
        ),
    )
    assert reply.usage == Usage.of(112, 51, 0, 0)


def test_tool_choice_as_a_string() -> None:
    recorder = Recorder(httpx.Response(200, content=fixture("completion_tool_calls.json")))
    provider(recorder).complete(request(tools=[WEATHER], tool_choice="required"))
    assert recorder.body["tool_choice"] == "required"


@pytest.mark.parametrize(
    ("upstream", "mapped"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("content_filter", "content_filter"),
        ("function_call", "tool_calls"),
        ("model_length", "length"),
        (None, "stop"),
        ("eos", "stop"),
    ],
)
def test_finish_reasons(upstream: str | None, mapped: str) -> None:
    document = json.loads(fixture("completion_text.json"))
    document["choices"][0]["finish_reason"] = upstream
    reply = provider(Recorder(httpx.Response(200, json=document))).complete(request())
    assert reply.finish_reason == mapped


def test_a_reply_without_usage_is_estimated() -> None:
    document = json.loads(fixture("completion_text.json"))
    del document["usage"]
    reply = provider(Recorder(httpx.Response(200, json=document))).complete(request())
    assert reply.usage == Usage.of(
        estimate_messages(["What is the capital of France?"]), estimate_text("The capital of France is Paris.")
    )


def test_a_refusal_is_the_reply() -> None:
    document = json.loads(fixture("completion_text.json"))
    document["choices"][0]["message"].update(content=None, refusal="I'm sorry, I can't help with that.")
    reply = provider(Recorder(httpx.Response(200, json=document))).complete(request())
    assert reply.content == "I'm sorry, I can't help with that."


# -- stream ----------------------------------------------------------------------------------------


def test_stream_yields_text_in_order_then_finish_with_reported_usage() -> None:
    # Anything after [DONE] must be ignored.
    body = fixture("stream_text.sse") + sse(chunk({"content": "AFTER-DONE"}), "not json")
    recorder = Recorder(httpx.Response(200, headers=SSE, content=body))
    events = list(provider(recorder).stream(request(max_tokens=20)))

    assert recorder.body["stream"] is True
    assert recorder.body["stream_options"] == {"include_usage": True}
    assert recorder.body["max_completion_tokens"] == 20
    assert recorder.request.headers["authorization"] == f"Bearer {KEY}"
    assert events == [
        TextDelta("Paris"),
        TextDelta(" is"),
        TextDelta(" the"),
        TextDelta(" capital"),
        TextDelta(" of"),
        TextDelta(" France"),
        TextDelta("."),
        Finish("stop", Usage.of(1290, 8, 1024, 0), "fp_07871e2ad8"),
    ]


def test_stream_reads_incrementally() -> None:
    parts = [sse(chunk({"content": "one"})), sse(chunk({"content": " two"})), sse(chunk(finish="stop"), "[DONE]")]
    body = Chunks(parts)
    events = provider(Recorder(httpx.Response(200, headers=SSE, stream=body))).stream(request())
    assert next(events) == TextDelta("one")
    assert body.sent == 1  # the first delta came before the rest of the body was read
    assert list(events)[:-1] == [TextDelta(" two")]
    assert body.closed


def test_stream_parallel_tool_calls_in_fragments() -> None:
    recorder = Recorder(httpx.Response(200, headers=SSE, content=fixture("stream_tool_calls.sse")))
    events = list(provider(recorder).stream(request(tools=[WEATHER])))

    assert events[:3] == [
        ToolCallDelta(index=0, id="call_Rk2mVq8sXw4nB7tLp1cYh9dZ", name="get_weather", arguments=""),
        ToolCallDelta(index=0, arguments='{"ci'),
        ToolCallDelta(index=0, arguments='ty": '),
    ]
    starts = [e for e in events if isinstance(e, ToolCallDelta) and e.id is not None]
    assert starts == [
        ToolCallDelta(index=0, id="call_Rk2mVq8sXw4nB7tLp1cYh9dZ", name="get_weather", arguments=""),
        ToolCallDelta(index=1, id="call_Hs5gTn1pQe6wKr3vMj8bXa2F", name="get_stock_price", arguments=""),
    ]
    arguments: dict[int, str] = {}
    for event in events:
        if isinstance(event, ToolCallDelta):
            arguments[event.index] = arguments.get(event.index, "") + event.arguments
    assert json.loads(arguments[0]) == {"city": "Edinburgh", "country": "UK"}
    assert json.loads(arguments[1]) == {"ticker": "AAPL", "exchange": "NASDAQ"}
    assert not any(isinstance(e, TextDelta) for e in events)
    assert events[-1] == Finish("tool_calls", Usage.of(149, 60, 0, 0), "fp_2a322c9ffc")
    assert sum(isinstance(e, Finish) for e in events) == 1


def test_stream_tool_calls_sent_whole_at_one_index_are_told_apart() -> None:
    # Ollama sends each call complete, every one at index 0.
    body = sse(
        chunk(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_a1",
                        "index": 0,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                ],
            }
        ),
        chunk(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_b2",
                        "index": 0,
                        "type": "function",
                        "function": {"name": "get_time", "arguments": '{"tz":"CET"}'},
                    },
                ],
            }
        ),
        chunk({"role": "assistant", "content": ""}, finish="tool_calls"),
        chunk(choices=[], usage={"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}),
        "[DONE]",
    )
    events = list(provider(Recorder(httpx.Response(200, headers=SSE, content=body)), api_key=None).stream(request()))
    assert events == [
        ToolCallDelta(index=0, id="call_a1", name="get_weather", arguments='{"city":"Paris"}'),
        ToolCallDelta(index=1, id="call_b2", name="get_time", arguments='{"tz":"CET"}'),
        Finish("tool_calls", Usage.of(30, 12)),
    ]


def test_stream_azure_annotations_and_missing_usage() -> None:
    recorder = Recorder(httpx.Response(200, headers=SSE, content=fixture("stream_azure.sse")))
    azure = provider(
        recorder,
        base_url="https://parley-test.openai.azure.com/openai/deployments/gpt-4o-prod",
        api_version="2024-10-21",
    )
    events = list(azure.stream(request(messages=[user("What is color?")])))

    assert recorder.request.headers["api-key"] == KEY
    assert dict(recorder.request.url.params) == {"api-version": "2024-10-21"}
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert texts == ["Color", " is", " light", " we", " see."]
    # The annotation after the finish chunk (finish_reason null) does not undo "stop", and
    # with no usage chunk the usage is Parley's estimate.
    assert events[-1] == Finish(
        "stop", Usage.of(estimate_messages(["What is color?"]), estimate_text("Color is light we see."))
    )


def test_stream_skips_comments_and_reads_groq_usage() -> None:
    body = b": OPENROUTER PROCESSING\n\n" + sse(
        chunk({"role": "assistant", "content": "Hi"}),
        chunk(
            finish="stop",
            x_groq={
                "id": "req_01k0",
                "usage": {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12},
            },
        ),
        "[DONE]",
    )
    events = list(provider(Recorder(httpx.Response(200, headers=SSE, content=body))).stream(request()))
    assert events == [TextDelta("Hi"), Finish("stop", Usage.of(11, 1))]


def test_stream_answered_with_one_json_completion() -> None:
    headers = {"content-type": "application/json"}
    recorder = Recorder(httpx.Response(200, headers=headers, content=fixture("completion_tool_calls.json")))
    events = list(provider(recorder).stream(request()))
    assert events == [
        ToolCallDelta(
            index=0, id="call_Wq3ZkP0sLm8vTn2bXc5yHd1R", name="get_weather", arguments='{"city":"Paris","unit":"c"}'
        ),
        ToolCallDelta(
            index=1, id="call_Jf7UeN4aQr9gMw1kVs6tBo3P", name="get_time", arguments='{"timezone":"Europe/Paris"}'
        ),
        Finish("tool_calls", Usage.of(112, 51, 0, 0), "fp_b3f1157249"),
    ]


def test_stream_closed_early_closes_the_response() -> None:
    body = Chunks([sse(chunk({"content": "one"})), sse(chunk({"content": " two"})), sse("[DONE]")])
    events = provider(Recorder(httpx.Response(200, headers=SSE, stream=body))).stream(request())
    assert next(events) == TextDelta("one")
    events.close()
    assert body.closed


# -- errors ----------------------------------------------------------------------------------------


def openai_error(message: str, kind: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


CONTEXT_TOO_LONG = openai_error(
    "This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens. "
    "Please reduce the length of the messages.",
    "invalid_request_error",
    "context_length_exceeded",
    "messages",
)


def run(mode: str, target: OpenAIProvider) -> None:
    if mode == "complete":
        target.complete(request())
    else:
        list(target.stream(request()))


def call(mode: str, handler: Handler, **options: Any) -> ProviderError:
    """The error complete() or stream() raised."""
    with pytest.raises(ProviderError) as caught:
        run(mode, provider(handler, **options))
    return caught.value


MODES = ["complete", "stream"]


@pytest.mark.parametrize("mode", MODES)
def test_400_is_rejected_with_the_upstream_message(mode: str) -> None:
    error = call(mode, Recorder(httpx.Response(400, json=CONTEXT_TOO_LONG)))
    assert type(error) is ProviderRejected
    assert "maximum context length is 128000 tokens" in error.message
    assert error.upstream_status == 400
    assert not error.retryable


@pytest.mark.parametrize("mode", MODES)
def test_401_is_an_auth_failure(mode: str) -> None:
    body = openai_error(
        "Incorrect API key provided: sk-proj-********************3210. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    )
    error = call(mode, Recorder(httpx.Response(401, json=body)))
    assert type(error) is ProviderError
    assert error.code == "provider_auth_failed"
    assert error.upstream_status == 401
    assert not error.retryable


@pytest.mark.parametrize("mode", MODES)
def test_429_is_rate_limited_with_retry_after(mode: str) -> None:
    body = openai_error(
        "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29800, "
        "Requested 1200. Please try again in 2.4s.",
        "tokens",
        "rate_limit_exceeded",
    )
    error = call(mode, Recorder(httpx.Response(429, headers={"retry-after": "7"}, json=body)))
    assert isinstance(error, ProviderRateLimited)
    assert error.retry_after == 7.0
    assert error.retryable
    assert "Rate limit reached" in error.message


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            500,
            openai_error(
                "The server had an error while processing your request. Sorry about that!", "server_error", None
            ),
        ),
        (503, openai_error("The engine is currently overloaded, please try again later", "server_error", None)),
        (503, {"error": {"code": 503, "message": "No allowed providers are available for the selected model."}}),
    ],
)
def test_server_errors_are_retryable(mode: str, status: int, body: dict[str, Any]) -> None:
    error = call(mode, Recorder(httpx.Response(status, json=body)))
    assert type(error) is ProviderError
    assert error.retryable
    assert error.upstream_status == status
    assert body["error"]["message"] in error.message


@pytest.mark.parametrize("mode", MODES)
def test_timeout_is_a_provider_timeout(mode: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    error = call(mode, handler)
    assert isinstance(error, ProviderTimeout)
    assert error.retryable


@pytest.mark.parametrize("mode", MODES)
def test_connect_error_is_retryable(mode: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    error = call(mode, handler)
    assert type(error) is ProviderError
    assert error.code == "provider_unreachable"
    assert error.retryable


@pytest.mark.parametrize("mode", MODES)
def test_a_200_that_is_not_json_is_a_provider_error(mode: str) -> None:
    headers = {"content-type": "application/json"}
    error = call(mode, Recorder(httpx.Response(200, headers=headers, content=b"<html>502 Bad Gateway</html>")))
    assert type(error) is ProviderError
    assert error.retryable


def test_an_error_object_in_a_200_body_is_classified_by_its_code() -> None:
    # OpenRouter answers 200 with an error object when the failure came after routing.
    body = {"error": {"code": 502, "message": "Provider returned error", "metadata": {"provider_name": "x"}}}
    error = call("complete", Recorder(httpx.Response(200, json=body)))
    assert error.upstream_status == 502
    assert error.retryable
    assert "Provider returned error" in error.message


def test_an_error_object_mid_stream_raises_after_the_first_deltas() -> None:
    body = Chunks(
        [
            sse(chunk({"role": "assistant", "content": "Once"}), chunk({"content": " upon"})),
            sse(
                openai_error(
                    "The server had an error while processing your request. Sorry about that!", "server_error", None
                )
            ),
            sse(chunk({"content": " a time"}), "[DONE]"),
        ]
    )
    events, error = collect(provider(Recorder(httpx.Response(200, headers=SSE, stream=body))).stream(request()))
    assert events == [TextDelta("Once"), TextDelta(" upon")]
    assert type(error) is ProviderError
    assert "The server had an error" in error.message
    assert body.closed


def test_openrouter_mid_stream_error_with_finish_reason_error() -> None:
    failure = {
        "id": "gen-1755002600-abc",
        "object": "chat.completion.chunk",
        "created": 1755002600,
        "model": "openai/gpt-4o",
        "provider": "OpenAI",
        "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    }
    body = sse(chunk({"role": "assistant", "content": "Hel"}), failure, "[DONE]")
    events, error = collect(provider(Recorder(httpx.Response(200, headers=SSE, content=body))).stream(request()))
    assert events == [TextDelta("Hel")]
    assert error is not None
    assert "Provider disconnected unexpectedly" in error.message


def test_a_connection_drop_mid_stream_raises_after_the_first_deltas() -> None:
    body = Chunks(
        [sse(chunk({"role": "assistant", "content": "Once"})), sse(chunk({"content": " upon"}))],
        error=httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
    )
    events, error = collect(provider(Recorder(httpx.Response(200, headers=SSE, stream=body))).stream(request()))
    assert events == [TextDelta("Once"), TextDelta(" upon")]
    assert type(error) is ProviderError
    assert "RemoteProtocolError" in error.message
    assert error.__cause__ is None and error.__context__ is None
    assert body.closed


def test_a_read_timeout_mid_stream_is_a_timeout() -> None:
    body = Chunks([sse(chunk({"content": "Once"}))], error=httpx.ReadTimeout("timed out"))
    events, error = collect(provider(Recorder(httpx.Response(200, headers=SSE, stream=body))).stream(request()))
    assert events == [TextDelta("Once")]
    assert isinstance(error, ProviderTimeout)
    assert body.closed


def test_a_stream_that_ends_without_finishing_is_an_error() -> None:
    body = Chunks([sse(chunk({"content": "Once"}), chunk({"content": " upon"}))])
    events, error = collect(provider(Recorder(httpx.Response(200, headers=SSE, stream=body))).stream(request()))
    assert events == [TextDelta("Once"), TextDelta(" upon")]
    assert type(error) is ProviderError
    assert error.retryable
    assert body.closed


def test_an_error_status_on_a_stream_reads_the_body_and_closes() -> None:
    body = Chunks([json.dumps(CONTEXT_TOO_LONG).encode()])
    events, error = collect(
        provider(Recorder(httpx.Response(400, headers={"content-type": "application/json"}, stream=body))).stream(
            request()
        )
    )
    assert events == []
    assert isinstance(error, ProviderRejected)
    assert "maximum context length" in error.message
    assert body.closed


# -- the key never leaks -----------------------------------------------------------------------------


def chain(error: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def sent_key(request: httpx.Request) -> str:
    return request.headers.get("api-key") or request.headers["authorization"].removeprefix("Bearer ")


def echoing(status: int) -> Handler:
    """A server that echoes the key it was sent (as some gateways do) in its error."""

    def handler(request: httpx.Request) -> httpx.Response:
        message = f"Incorrect API key provided: {sent_key(request)}."
        return httpx.Response(status, json={"error": {"message": message, "code": None}})

    return handler


def leaking_transport(request: httpx.Request) -> httpx.Response:
    """A transport failure whose text holds the key."""
    raise httpx.ConnectError(f"refused for {sent_key(request)}", request=request)


def stream_echo(request: httpx.Request) -> httpx.Response:
    """An error object in the stream that echoes the key."""
    failure = {"error": {"message": f"bad key {sent_key(request)}", "type": "invalid_request_error"}}
    return httpx.Response(200, headers=SSE, content=sse(chunk({"content": "x"}), failure))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "handler",
    [echoing(401), echoing(400), echoing(429), echoing(500), leaking_transport, stream_echo],
    ids=["401", "400", "429", "500", "transport", "in-stream"],
)
@pytest.mark.parametrize("azure", [False, True])
def test_the_api_key_never_appears_in_an_error(mode: str, handler: Handler, azure: bool) -> None:
    options: dict[str, Any] = {"api_version": "2024-10-21"} if azure else {}
    target = provider(handler, **options)
    with pytest.raises(ProviderError) as caught:
        run(mode, target)
    assert KEY not in repr(target)
    for error in chain(caught.value):
        for text in (str(error), repr(error), repr(error.args), getattr(error, "message", "")):
            assert KEY not in text
    # Where upstream echoed the key, it was redacted (not the message dropped).
    if handler is not leaking_transport and not (handler is stream_echo and mode == "complete"):
        assert "[redacted]" in caught.value.message


def test_stream_finish_reason_survives_later_annotations() -> None:
    # Azure's filter annotations can follow the finish chunk, with finish_reason null.
    annotation = {
        "id": "",
        "object": "",
        "created": 0,
        "model": "",
        "choices": [{"index": 0, "finish_reason": None, "content_filter_results": {}}],
        "usage": None,
    }
    body = sse(chunk({"content": "Once upon"}), chunk(finish="length"), annotation, "[DONE]")
    events = list(provider(Recorder(httpx.Response(200, headers=SSE, content=body))).stream(request()))
    assert isinstance(events[-1], Finish)
    assert events[-1].reason == "length"


def test_stream_repeated_ids_and_names_are_sent_once() -> None:
    # Some servers repeat the call's id and name in every fragment; the port wants them once.
    def piece(arguments: str) -> dict[str, Any]:
        call = {
            "index": 0,
            "id": "call_x",
            "type": "function",
            "function": {"name": "get_weather", "arguments": arguments},
        }
        return chunk({"tool_calls": [call]})

    body = sse(piece(""), piece('{"city":'), piece('"Oslo"}'), chunk(finish="tool_calls"), "[DONE]")
    events = list(provider(Recorder(httpx.Response(200, headers=SSE, content=body))).stream(request()))
    assert events[:3] == [
        ToolCallDelta(index=0, id="call_x", name="get_weather", arguments=""),
        ToolCallDelta(index=0, arguments='{"city":'),
        ToolCallDelta(index=0, arguments='"Oslo"}'),
    ]
    assert isinstance(events[3], Finish)
    assert events[3].reason == "tool_calls"


def test_stream_tool_call_without_id_gets_one() -> None:
    call = {"index": 0, "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
    body = sse(chunk({"tool_calls": [call]}), chunk(finish="tool_calls"), "[DONE]")
    events = list(provider(Recorder(httpx.Response(200, headers=SSE, content=body))).stream(request()))
    first = events[0]
    assert isinstance(first, ToolCallDelta)
    assert first.id is not None and first.id.startswith("call_")
    assert (first.index, first.name, first.arguments) == (0, "get_weather", '{"city":"Oslo"}')


def test_line_separators_inside_a_chunk_stay_in_its_text() -> None:
    """U+2028, U+2029 and U+0085 are valid unescaped in JSON strings; only CR and LF end an SSE
    line. The chunk arrives split across reads, and with a CRLF stream, to exercise the decoder."""
    text = "one\u2028two\u2029three\u0085four\x1cfive"
    raw = f"data: {json.dumps(chunk({'content': text}), ensure_ascii=False)}\r\n\r\n".encode()
    parts = [raw[:20], raw[20:33], raw[33:], sse(chunk(finish="stop"), "[DONE]")]
    events = list(provider(Recorder(httpx.Response(200, headers=SSE, stream=Chunks(parts)))).stream(request()))
    assert events[0] == TextDelta(text)
    assert isinstance(events[-1], Finish)


def test_a_stream_answered_with_another_content_type_is_a_provider_error() -> None:
    reply = httpx.Response(200, headers={"content-type": "text/html"}, content=b"<html>captive portal</html>")
    seen, error = collect(provider(Recorder(reply)).stream(request()))
    assert seen == []
    assert error is not None
    assert "text/html, not an event stream" in error.message


@pytest.mark.parametrize("mode", MODES)
def test_extra_header_values_are_redacted_from_errors(mode: str) -> None:
    value = "apim-0123456789abcdef"
    echo = httpx.Response(401, json={"error": {"message": f"Access denied: invalid subscription key {value}."}})
    recorder = Recorder(echo)
    error = call(mode, recorder, headers={"Ocp-Apim-Subscription-Key": value, "X-Tier": "gold"})
    assert recorder.request.headers["ocp-apim-subscription-key"] == value
    assert value not in error.message
    assert "invalid subscription key [redacted]" in error.message
