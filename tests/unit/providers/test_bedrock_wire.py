"""The bedrock adapter against the Converse and ConverseStream wire formats.

Nothing reaches AWS. `converse` goes through a real boto3 client wrapped in botocore's Stubber,
which validates the request we send and the response we script against the bedrock-runtime
service model. `converse_stream` goes through a real client whose HTTP send is replaced
(botocore's `before-send` event): the request is serialized by botocore as it would be sent, and
the answer is a binary `application/vnd.amazon.eventstream` body that botocore's own event
stream parser decodes, so exception events come back exactly as botocore raises them.

Shapes from botocore's bedrock-runtime service-2.json (ConverseRequest, ConverseResponse,
ConverseStreamOutput) and the Bedrock API reference for Converse and ConverseStream.
"""

from __future__ import annotations

import base64
import functools
import json
import struct
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import boto3
import pytest
import urllib3.exceptions
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber
from botocore.validate import validate_parameters

from parley.aws import set_clients
from parley.domain.chat import ChatMessage, FunctionCall, Tool, ToolCall, ToolChoiceFunction, Usage
from parley.domain.errors import (
    InvalidRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
)
from parley.providers.base import Finish, ModelRequest, TextDelta, ToolCallDelta
from parley.providers.bedrock import BedrockProvider

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF"


# --- clients ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@functools.cache
def _session() -> boto3.session.Session:
    # One session for the module, so the service model is loaded once; it is first used inside a
    # test, after the fake credentials are in the environment.
    return boto3.session.Session()


def make_client() -> Any:
    # No SDK retries: Parley retries before the first token. (botocore's `max_attempts` counts
    # retries after the first attempt; `total_max_attempts` counts attempts.)
    return _session().client(
        "bedrock-runtime", region_name="us-east-1", config=Config(retries={"mode": "standard", "total_max_attempts": 1})
    )


@pytest.fixture
def stubbed() -> Iterator[tuple[Stubber, BedrockProvider]]:
    client = make_client()
    with Stubber(client) as stubber:
        yield stubber, BedrockProvider(client=client)
        stubber.assert_no_pending_responses()


class RawStream:
    """What botocore reads an HTTP body from (urllib3's response): `stream()` and `close()`."""

    def __init__(self, chunks: list[bytes], fail: Exception | None = None) -> None:
        self.chunks = chunks
        self.fail = fail
        self.closed = False

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield from self.chunks
        if self.fail is not None:
            raise self.fail

    def close(self) -> None:
        self.closed = True


def headers(values: dict[str, str]) -> HTTPHeaders:
    result = HTTPHeaders()
    for name, value in values.items():
        result[name] = value
    return result


@dataclass
class Wire:
    """Replaces the HTTP send of a real client: scripted answers, recorded requests."""

    client: Any
    answers: list[AWSResponse | Exception] = field(default_factory=list)
    requests: list[AWSPreparedRequest] = field(default_factory=list)

    def send(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        self.requests.append(request)
        assert self.answers, "unscripted request: nothing may reach AWS"
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def body(self, index: int = -1) -> Any:
        return json.loads(cast(bytes, self.requests[index].body))

    def stream(self, *events: bytes, fail: Exception | None = None, chunk: int = 7) -> RawStream:
        data = b"".join(events)
        # Cut into small chunks, so messages arrive split as they do over the network.
        raw = RawStream([data[i : i + chunk] for i in range(0, len(data), chunk)], fail)
        self.answers.append(
            AWSResponse(
                f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{MODEL}/converse-stream",
                200,
                headers({"Content-Type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": "req-1"}),
                raw,
            )
        )
        return raw

    def error(self, status: int, code: str, message: str) -> None:
        self.answers.append(
            AWSResponse(
                "https://bedrock-runtime.us-east-1.amazonaws.com/",
                status,
                headers(
                    {
                        "Content-Type": "application/json",
                        "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/",
                    }
                ),
                RawStream([json.dumps({"message": message}).encode()]),
            )
        )


@pytest.fixture
def wire() -> Wire:
    client = make_client()
    recorder = Wire(client)
    client.meta.events.register("before-send.bedrock-runtime", recorder.send)
    return recorder


# --- the binary event stream (application/vnd.amazon.eventstream) ----------------------------


def _string_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack("B", len(raw_name)) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value


def _message(headers: dict[str, str], payload: dict[str, Any]) -> bytes:
    """One event stream message: prelude (total length, headers length, CRC), headers, payload, CRC."""
    encoded_headers = b"".join(_string_header(name, value) for name, value in headers.items())
    body = json.dumps(payload).encode()
    prelude = struct.pack(">II", 16 + len(encoded_headers) + len(body), len(encoded_headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded_headers + body
    return message + struct.pack(">I", zlib.crc32(message))


def event(kind: str, payload: dict[str, Any]) -> bytes:
    # Bedrock pads events with a random "p" field; parsers must ignore it.
    return _message(
        {":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
        {**payload, "p": "abcdefghij"},
    )


def exception_event(kind: str, message: str) -> bytes:
    return _message(
        {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
        {"message": message},
    )


def text_delta(index: int, text: str) -> bytes:
    return event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": text}})


def metadata(input_tokens: int, output_tokens: int, **extra: int) -> bytes:
    usage = {"inputTokens": input_tokens, "outputTokens": output_tokens, **extra}
    usage["totalTokens"] = sum(usage.values())
    return event("metadata", {"usage": usage, "metrics": {"latencyMs": 321}})


# --- requests and responses ------------------------------------------------------------------


def request(*messages: ChatMessage, **kwargs: Any) -> ModelRequest:
    return ModelRequest(model=MODEL, messages=messages or (ChatMessage(role="user", content="Hi"),), **kwargs)


def converse_response(
    *content: dict[str, Any], stop_reason: str = "end_turn", usage: dict[str, int] | None = None
) -> dict[str, Any]:
    tokens = usage or {"inputTokens": 12, "outputTokens": 5}
    return {
        "output": {"message": {"role": "assistant", "content": list(content)}},
        "stopReason": stop_reason,
        "usage": {**tokens, "totalTokens": sum(tokens.values())},
        "metrics": {"latencyMs": 420},
    }


WEATHER = Tool.model_validate(
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
)
TIME = Tool.model_validate({"type": "function", "function": {"name": "get_time"}})
WEATHER_SPEC = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    }
}
TIME_SPEC = {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object", "properties": {}}}}}


# --- complete() ------------------------------------------------------------------------------


def test_reply_sends_the_exact_converse_request(stubbed: tuple[Stubber, BedrockProvider]) -> None:
    stubber, provider = stubbed
    stubber.add_response(
        "converse",
        converse_response({"text": "Bonjour"}, {"text": " !"}),
        expected_params={
            "modelId": MODEL,
            "system": [{"text": "Be brief."}, {"text": "Answer in French."}],
            "messages": [{"role": "user", "content": [{"text": "Hello"}]}],
            "inferenceConfig": {"maxTokens": 64, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
        },
    )
    reply = provider.complete(
        request(
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="developer", content="Answer in French."),
            ChatMessage(role="user", content="Hello"),
            max_tokens=64,
            temperature=0.5,
            top_p=0.9,
            stop=["END", ""],
            # No Converse field for these: not sent (the Stubber would refuse unknown keys anyway).
            seed=7,
            presence_penalty=0.5,
            frequency_penalty=0.5,
            user="user-1",
            parallel_tool_calls=False,
        )
    )
    assert reply.content == "Bonjour !"
    assert reply.finish_reason == "stop"
    assert reply.usage == Usage.of(12, 5)
    assert reply.tool_calls == ()
    assert provider.name == "bedrock"
    assert provider.models() == ()


def test_unset_sampling_fields_send_no_inference_config(stubbed: tuple[Stubber, BedrockProvider]) -> None:
    stubber, provider = stubbed
    stubber.add_response(
        "converse",
        converse_response({"text": "ok"}),
        expected_params={"modelId": MODEL, "messages": [{"role": "user", "content": [{"text": "Hi"}]}]},
    )
    assert provider.complete(request()).content == "ok"


def test_messages_are_merged_to_alternate_with_images_and_tool_round_trip(
    stubbed: tuple[Stubber, BedrockProvider],
) -> None:
    stubber, provider = stubbed
    png = base64.b64encode(PNG).decode()
    jpeg = base64.b64encode(JPEG).decode()
    messages = (
        ChatMessage(role="user", content="First."),
        ChatMessage.model_validate(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                    {"type": "image_url", "image_url": {"url": f"data:image/jpg;base64,{jpeg}", "detail": "low"}},
                ],
            }
        ),
        ChatMessage(
            role="assistant",
            content="Let me check.",
            tool_calls=[
                ToolCall(id="tooluse_1", function=FunctionCall(name="get_weather", arguments='{"city": "Paris"}')),
                ToolCall(id="tooluse_2", function=FunctionCall(name="get_time", arguments="")),
            ],
        ),
        ChatMessage(role="tool", tool_call_id="tooluse_1", content="18 C, sunny"),
        ChatMessage.model_validate(
            {"role": "tool", "tool_call_id": "tooluse_2", "content": [{"type": "text", "text": "14:05"}]}
        ),
        ChatMessage(role="user", content="Thanks. And tomorrow?"),
        ChatMessage(role="assistant", content="Tomorrow: rain."),
        ChatMessage(role="assistant", content="Anything else?"),
        ChatMessage(role="user", content="No."),
    )
    stubber.add_response(
        "converse",
        converse_response({"text": "Bye."}),
        expected_params={
            "modelId": MODEL,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"text": "First."},
                        {"text": "What is in these?"},
                        {"image": {"format": "png", "source": {"bytes": PNG}}},
                        {"image": {"format": "jpeg", "source": {"bytes": JPEG}}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"text": "Let me check."},
                        {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
                        {"toolUse": {"toolUseId": "tooluse_2", "name": "get_time", "input": {}}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18 C, sunny"}]}},
                        {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "14:05"}]}},
                        {"text": "Thanks. And tomorrow?"},
                    ],
                },
                {"role": "assistant", "content": [{"text": "Tomorrow: rain."}, {"text": "Anything else?"}]},
                {"role": "user", "content": [{"text": "No."}]},
            ],
            # Converse refuses toolUse/toolResult blocks without a toolConfig: the tools are sent.
            "toolConfig": {"tools": [WEATHER_SPEC, TIME_SPEC]},
        },
    )
    assert provider.complete(request(*messages, tools=[WEATHER, TIME])).content == "Bye."


def test_assistant_turn_with_only_tool_calls_has_no_blank_text(stubbed: tuple[Stubber, BedrockProvider]) -> None:
    stubber, provider = stubbed
    call = ToolCall(id="tooluse_1", function=FunctionCall(name="get_time", arguments="{}"))
    stubber.add_response(
        "converse",
        converse_response({"text": "It is 14:05."}),
        expected_params={
            "modelId": MODEL,
            "messages": [
                {"role": "user", "content": [{"text": "Time?"}]},
                {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "tooluse_1", "name": "get_time", "input": {}}}],
                },
                {
                    "role": "user",
                    "content": [{"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "14:05"}]}}],
                },
            ],
            "toolConfig": {"tools": [TIME_SPEC]},
        },
    )
    messages = (
        ChatMessage(role="user", content="Time?"),
        ChatMessage(role="assistant", content="", tool_calls=[call]),
        ChatMessage(role="tool", tool_call_id="tooluse_1", content="14:05"),
    )
    assert provider.complete(request(*messages, tools=[TIME])).content == "It is 14:05."


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://example.com/cat.png", "data URLs"),
        ("data:image/bmp;base64,Qk0=", "png, jpeg, gif and webp"),
        ("data:image/png;base64,%%%not base64%%%", "not valid base64"),
    ],
)
def test_unsupported_images_are_invalid_requests(
    stubbed: tuple[Stubber, BedrockProvider], url: str, fragment: str
) -> None:
    _, provider = stubbed  # no response queued: a call would fail the test
    message = ChatMessage.model_validate(
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
    )
    with pytest.raises(InvalidRequest) as caught:
        provider.complete(request(message))
    assert caught.value.param == "messages"
    assert fragment in caught.value.message


def test_invalid_tool_arguments_and_temperature_are_invalid_requests(stubbed: tuple[Stubber, BedrockProvider]) -> None:
    _, provider = stubbed
    call = ToolCall(id="tooluse_1", function=FunctionCall(name="get_time", arguments="{not json"))
    with pytest.raises(InvalidRequest) as caught:
        provider.complete(request(ChatMessage(role="assistant", tool_calls=[call])))
    assert caught.value.param == "messages"
    with pytest.raises(InvalidRequest) as caught:
        provider.complete(request(temperature=1.5))
    assert caught.value.param == "temperature"


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        (None, None),
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        (
            ToolChoiceFunction.model_validate({"type": "function", "function": {"name": "get_weather"}}),
            {"tool": {"name": "get_weather"}},
        ),
    ],
)
def test_tool_call_reply_with_each_tool_choice(
    stubbed: tuple[Stubber, BedrockProvider], tool_choice: Any, expected: dict[str, Any] | None
) -> None:
    stubber, provider = stubbed
    tool_config: dict[str, Any] = {"tools": [WEATHER_SPEC, TIME_SPEC]}
    if expected is not None:
        tool_config["toolChoice"] = expected
    stubber.add_response(
        "converse",
        converse_response(
            {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": "tooluse_b", "name": "get_time", "input": {}}},
            stop_reason="tool_use",
        ),
        expected_params={
            "modelId": MODEL,
            "messages": [{"role": "user", "content": [{"text": "Weather in Paris?"}]}],
            "toolConfig": tool_config,
        },
    )
    reply = provider.complete(
        request(ChatMessage(role="user", content="Weather in Paris?"), tools=[WEATHER, TIME], tool_choice=tool_choice)
    )
    assert reply.finish_reason == "tool_calls"
    assert reply.content is None
    assert [(call.id, call.function.name) for call in reply.tool_calls] == [
        ("tooluse_a", "get_weather"),
        ("tooluse_b", "get_time"),
    ]
    assert json.loads(reply.tool_calls[0].function.arguments) == {"city": "Paris"}
    assert json.loads(reply.tool_calls[1].function.arguments) == {}


def test_tool_choice_none_sends_no_tools(stubbed: tuple[Stubber, BedrockProvider]) -> None:
    stubber, provider = stubbed
    stubber.add_response(
        "converse",
        converse_response({"text": "Sunny, I think."}),
        expected_params={"modelId": MODEL, "messages": [{"role": "user", "content": [{"text": "Hi"}]}]},
    )
    assert provider.complete(request(tools=[WEATHER], tool_choice="none")).content == "Sunny, I think."


def test_text_and_tool_use_in_one_reply(stubbed: tuple[Stubber, BedrockProvider]) -> None:
    stubber, provider = stubbed
    stubber.add_response(
        "converse",
        converse_response(
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather", "input": {"city": "Zürich"}}},
            stop_reason="tool_use",
        ),
    )
    reply = provider.complete(request(tools=[WEATHER]))
    assert reply.content == "Checking."
    assert json.loads(reply.tool_calls[0].function.arguments) == {"city": "Zürich"}


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("content_filtered", "content_filter"),
        ("guardrail_intervened", "content_filter"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_stop_reasons(stubbed: tuple[Stubber, BedrockProvider], stop_reason: str, finish: str) -> None:
    stubber, provider = stubbed
    stubber.add_response("converse", converse_response({"text": "x"}, stop_reason=stop_reason))
    assert provider.complete(request()).finish_reason == finish


def test_usage_counts_prompt_cache_tokens(stubbed: tuple[Stubber, BedrockProvider]) -> None:
    stubber, provider = stubbed
    stubber.add_response(
        "converse",
        converse_response(
            {"text": "x"},
            usage={"inputTokens": 10, "outputTokens": 4, "cacheReadInputTokens": 100, "cacheWriteInputTokens": 20},
        ),
    )
    usage = provider.complete(request()).usage
    assert usage == Usage.of(130, 4, 100)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 100


# --- errors ----------------------------------------------------------------------------------

ERRORS = [
    # code, HTTP status (service-2.json), Parley class, code, retryable
    ("ThrottlingException", 429, ProviderRateLimited, "provider_rate_limited", True),
    ("ValidationException", 400, ProviderRejected, "provider_rejected_request", False),
    ("ResourceNotFoundException", 404, ProviderRejected, "provider_rejected_request", False),
    ("ModelErrorException", 424, ProviderError, "provider_error", False),
    ("AccessDeniedException", 403, ProviderError, "provider_auth_failed", False),
    ("ModelTimeoutException", 408, ProviderTimeout, "provider_timeout", True),
    ("ServiceUnavailableException", 503, ProviderError, "provider_error", True),
    ("InternalServerException", 500, ProviderError, "provider_error", True),
    ("ModelNotReadyException", 429, ProviderError, "provider_error", True),
]


@pytest.mark.parametrize(("aws_code", "status", "kind", "code", "retryable"), ERRORS)
def test_client_errors_map_to_provider_errors(
    stubbed: tuple[Stubber, BedrockProvider],
    aws_code: str,
    status: int,
    kind: type[ProviderError],
    code: str,
    retryable: bool,
) -> None:
    stubber, provider = stubbed
    stubber.add_client_error(
        "converse", service_error_code=aws_code, service_message=f"{aws_code} says no", http_status_code=status
    )
    with pytest.raises(ProviderError) as caught:
        provider.complete(request())
    error = caught.value
    assert type(error) is kind
    assert (error.code, error.retryable, error.upstream_status) == (code, retryable, status)
    assert f"{aws_code} says no" in error.message
    assert "fake-secret" not in error.message and "AKIDEXAMPLEFAKE" not in error.message


def test_access_denied_hides_the_iam_principal(stubbed: tuple[Stubber, BedrockProvider]) -> None:
    stubber, provider = stubbed
    stubber.add_client_error(
        "converse",
        service_error_code="AccessDeniedException",
        service_message=(
            "User: arn:aws:sts::123456789012:assumed-role/parley-fn/session is not authorized to perform: "
            "bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1::foundation-model/x"
        ),
        http_status_code=403,
    )
    with pytest.raises(ProviderError) as caught:
        provider.complete(request())
    assert "123456789012" not in caught.value.message
    assert "not authorized to perform: bedrock:InvokeModel" in caught.value.message


@pytest.mark.parametrize(
    ("failure", "kind", "code", "retryable"),
    [
        (ReadTimeoutError(endpoint_url="https://bedrock-runtime"), ProviderTimeout, "provider_timeout", True),
        (ConnectTimeoutError(endpoint_url="https://bedrock-runtime"), ProviderTimeout, "provider_timeout", True),
        (EndpointConnectionError(endpoint_url="https://bedrock-runtime"), ProviderError, "provider_unreachable", True),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
def test_transport_failures(
    wire: Wire, failure: Exception, kind: type[ProviderError], code: str, retryable: bool, streaming: bool
) -> None:
    wire.answers.append(failure)
    provider = BedrockProvider(client=wire.client)
    call = (lambda: list(provider.stream(request()))) if streaming else (lambda: provider.complete(request()))
    with pytest.raises(ProviderError) as caught:
        call()
    assert type(caught.value) is kind
    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert len(wire.requests) == 1  # one attempt: Parley, not botocore, retries


# --- stream() --------------------------------------------------------------------------------


def test_stream_request_on_the_wire(wire: Wire) -> None:
    wire.stream(
        event("messageStart", {"role": "assistant"}),
        text_delta(0, "ok"),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("messageStop", {"stopReason": "end_turn"}),
        metadata(3, 1),
    )
    message = ChatMessage.model_validate(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
            ],
        }
    )
    provider = BedrockProvider(client=wire.client)
    events = list(
        provider.stream(
            request(
                ChatMessage(role="system", content="Be brief."),
                message,
                max_tokens=10,
                temperature=0,
                tools=[WEATHER],
                tool_choice="required",
            )
        )
    )
    assert events == [TextDelta("ok"), Finish("stop", Usage.of(3, 1))]
    sent = wire.requests[0]
    assert sent.method == "POST"
    assert sent.url == (
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    )
    assert wire.body() == {
        "system": [{"text": "Be brief."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Look"},
                    {"image": {"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}},
                ],
            }
        ],
        "inferenceConfig": {"maxTokens": 10, "temperature": 0},
        "toolConfig": {"tools": [WEATHER_SPEC], "toolChoice": {"any": {}}},
    }


def test_stream_text_then_tool_calls_in_fragments(wire: Wire) -> None:
    raw = wire.stream(
        event("messageStart", {"role": "assistant"}),
        text_delta(0, "Let me "),
        text_delta(0, "check."),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event(
            "contentBlockStart",
            {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather"}}},
        ),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city": '}}}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '"Paris"}'}}}),
        event("contentBlockStop", {"contentBlockIndex": 1}),
        event(
            "contentBlockStart",
            {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_b", "name": "get_time"}}},
        ),
        event("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{}"}}}),
        event("contentBlockStop", {"contentBlockIndex": 2}),
        event("messageStop", {"stopReason": "tool_use"}),
        metadata(40, 25, cacheReadInputTokens=8),
    )
    events = list(BedrockProvider(client=wire.client).stream(request(tools=[WEATHER, TIME])))
    assert events == [
        TextDelta("Let me "),
        TextDelta("check."),
        ToolCallDelta(index=0, id="tooluse_a", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"city": '),
        ToolCallDelta(index=0, arguments='"Paris"}'),
        ToolCallDelta(index=1, id="tooluse_b", name="get_time"),
        ToolCallDelta(index=1, arguments="{}"),
        Finish("tool_calls", Usage.of(48, 25, 8)),
    ]
    assert raw.closed


@pytest.mark.parametrize(("stop_reason", "finish"), [("max_tokens", "length"), ("content_filtered", "content_filter")])
def test_stream_stop_reason(wire: Wire, stop_reason: str, finish: str) -> None:
    wire.stream(text_delta(0, "a"), event("messageStop", {"stopReason": stop_reason}), metadata(1, 1))
    events = list(BedrockProvider(client=wire.client).stream(request()))
    assert events[-1] == Finish(finish, Usage.of(1, 1))  # type: ignore[arg-type]


STREAM_EXCEPTIONS = [
    # ConverseStreamOutput exception member, Parley class, retryable
    ("modelStreamErrorException", ProviderError, True),
    ("internalServerException", ProviderError, True),
    ("serviceUnavailableException", ProviderError, True),
    ("throttlingException", ProviderRateLimited, True),
    ("validationException", ProviderRejected, False),
]


@pytest.mark.parametrize(("member", "kind", "retryable"), STREAM_EXCEPTIONS)
def test_exception_event_after_deltas(wire: Wire, member: str, kind: type[ProviderError], retryable: bool) -> None:
    raw = wire.stream(
        event("messageStart", {"role": "assistant"}),
        text_delta(0, "Once upon"),
        text_delta(0, " a time"),
        exception_event(member, "the model stumbled"),
        event("messageStop", {"stopReason": "end_turn"}),  # never reached
    )
    received: list[object] = []
    with pytest.raises(ProviderError) as caught:
        received.extend(BedrockProvider(client=wire.client).stream(request()))
    assert received == [TextDelta("Once upon"), TextDelta(" a time")]
    assert type(caught.value) is kind
    assert caught.value.retryable is retryable
    assert "the model stumbled" in caught.value.message
    assert raw.closed


def test_read_timeout_in_the_middle_of_the_stream(wire: Wire) -> None:
    raw = wire.stream(
        text_delta(0, "partial"),
        fail=urllib3.exceptions.ReadTimeoutError(None, "/", "Read timed out."),  # type: ignore[arg-type]
    )
    received: list[object] = []
    with pytest.raises(ProviderTimeout):
        received.extend(BedrockProvider(client=wire.client).stream(request()))
    assert received == [TextDelta("partial")]
    assert raw.closed


def test_stream_without_stop_reason_is_an_error(wire: Wire) -> None:
    wire.stream(text_delta(0, "cut"))
    with pytest.raises(ProviderError, match="without a stop reason"):
        list(BedrockProvider(client=wire.client).stream(request()))


@pytest.mark.parametrize(("aws_code", "status", "kind", "code", "retryable"), ERRORS)
def test_stream_refused_before_the_first_event(
    wire: Wire, aws_code: str, status: int, kind: type[ProviderError], code: str, retryable: bool
) -> None:
    wire.error(status, aws_code, f"{aws_code} says no")
    with pytest.raises(ProviderError) as caught:
        next(BedrockProvider(client=wire.client).stream(request()))
    assert type(caught.value) is kind
    assert (caught.value.code, caught.value.retryable, caught.value.upstream_status) == (code, retryable, status)
    assert f"{aws_code} says no" in caught.value.message


def test_abandoned_stream_is_closed(wire: Wire) -> None:
    raw = wire.stream(text_delta(0, "one"), text_delta(0, "two"), event("messageStop", {"stopReason": "end_turn"}))
    events = cast(Generator[object], BedrockProvider(client=wire.client).stream(request()))
    assert next(events) == TextDelta("one")
    events.close()
    assert raw.closed


# --- a stream of plain dicts, in the documented ConverseStreamOutput shape --------------------


class DictStreamClient:
    """A stand-in for the client whose stream yields the documented event dicts (as a fake or a
    wrapper would); the request is still checked against the ConverseStream input shape."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.requests: list[dict[str, Any]] = []
        self.model = make_client().meta.service_model.operation_model("ConverseStream")

    def converse_stream(self, **params: Any) -> dict[str, Any]:
        validate_parameters(params, self.model.input_shape)
        self.requests.append(params)
        return {"stream": iter(self.events)}


def test_exception_member_in_a_dict_stream() -> None:
    client = DictStreamClient(
        [
            {"messageStart": {"role": "assistant"}},
            {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Hel"}}},
            {"throttlingException": {"message": "Too many tokens, please wait before trying again."}},
        ]
    )
    received: list[object] = []
    with pytest.raises(ProviderRateLimited, match="Too many tokens"):
        received.extend(BedrockProvider(client=client).stream(request(tools=[WEATHER], tool_choice="auto")))  # type: ignore[arg-type]
    assert received == [TextDelta("Hel")]
    assert client.requests[0]["toolConfig"] == {"tools": [WEATHER_SPEC], "toolChoice": {"auto": {}}}


def test_dict_stream_with_usage_and_tool_call() -> None:
    client = DictStreamClient(
        [
            {"messageStart": {"role": "assistant"}},
            {
                "contentBlockStart": {
                    "contentBlockIndex": 0,
                    "start": {"toolUse": {"toolUseId": "tooluse_z", "name": "get_time"}},
                }
            },
            {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{}"}}}},
            {"contentBlockStop": {"contentBlockIndex": 0}},
            {"messageStop": {"stopReason": "tool_use"}},
            {
                "metadata": {
                    "usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7},
                    "metrics": {"latencyMs": 10},
                }
            },
        ]
    )
    events = list(BedrockProvider(client=client).stream(request(tools=[TIME])))  # type: ignore[arg-type]
    assert events == [
        ToolCallDelta(index=0, id="tooluse_z", name="get_time"),
        ToolCallDelta(index=0, arguments="{}"),
        Finish("tool_calls", Usage.of(5, 2)),
    ]


# --- the shared client -------------------------------------------------------------------------


def test_client_is_resolved_at_call_time(stubbed: tuple[Stubber, BedrockProvider]) -> None:
    stubber, stubbed_provider = stubbed
    set_clients(None)
    provider = BedrockProvider()  # builds no client
    set_clients(SimpleNamespace(bedrock_runtime=stubbed_provider._client))  # type: ignore[arg-type]
    stubber.add_response("converse", converse_response({"text": "shared"}))
    assert provider.complete(request()).content == "shared"
