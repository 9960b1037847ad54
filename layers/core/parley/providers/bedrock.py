"""Amazon Bedrock through the Converse and ConverseStream APIs (boto3, IAM credentials).

The one adapter that uses a vendor SDK: boto3 is in the Lambda runtime already, and it signs
requests with the function's role, so no key is stored. Model ids (`anthropic.claude-...`,
`us.anthropic.claude-...` inference profiles, ARNs) are passed through as `modelId`.

OpenAI chat messages become Converse content blocks: system and developer messages go to
`system`, tool results become `toolResult` blocks of a user message, and consecutive messages
of one role are merged, since Converse wants user and assistant turns to alternate.

Wire reference: botocore's `bedrock-runtime` service model (service-2.json) and
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html and
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import urllib3.exceptions
from botocore.eventstream import ParserError as EventStreamParserError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError

from parley.aws import clients
from parley.domain.chat import (
    ChatMessage,
    ContentPart,
    FinishReason,
    FunctionCall,
    ImagePart,
    RefusalPart,
    TextPart,
    ToolCall,
    ToolChoiceFunction,
    Usage,
)
from parley.domain.errors import InvalidRequest, ProviderError, ProviderRateLimited, ProviderRejected, ProviderTimeout
from parley.providers.base import Finish, ModelReply, ModelRequest, StreamEvent, TextDelta, ToolCallDelta

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient
    from mypy_boto3_bedrock_runtime.type_defs import (
        ContentBlockTypeDef,
        ConverseResponseTypeDef,
        ConverseStreamOutputTypeDef,
        InferenceConfigurationTypeDef,
        MessageTypeDef,
        SystemContentBlockTypeDef,
        TokenUsageTypeDef,
        ToolConfigurationTypeDef,
        ToolResultBlockTypeDef,
        ToolSpecificationTypeDef,
        ToolTypeDef,
    )

PROVIDER = "bedrock"

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    # The conversation filled the model's context window: the answer was cut, as with max_tokens.
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
    # malformed_model_output and malformed_tool_use have no OpenAI counterpart: "stop".
}

_IMAGE_FORMATS: dict[str, Literal["png", "jpeg", "gif", "webp"]] = {
    "png": "png",
    "jpeg": "jpeg",
    "jpg": "jpeg",
    "gif": "gif",
    "webp": "webp",
}
_DATA_URL = re.compile(r"data:image/([A-Za-z0-9.+-]+);base64,(.*)", re.DOTALL)

# Error codes of the Converse/ConverseStream operations (service-2.json) and their meaning:
_REJECTED = frozenset({"ValidationException", "ResourceNotFoundException"})
_AUTH_FAILED = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "NotAuthorized",
    }
)
_RETRYABLE = frozenset(
    {
        "ServiceUnavailableException",
        "InternalServerException",
        "InternalFailure",
        # "not ready to serve inference requests"; the SDKs retry it themselves.
        "ModelNotReadyException",
        # Only sent inside a stream: "An error occurred while streaming the response. Retry your request."
        "ModelStreamErrorException",
    }
)
# The exception members of ConverseStreamOutput, as a stream of plain dicts would carry them
# (botocore itself raises EventStreamError for them instead, with the member name as code).
_STREAM_EXCEPTIONS = (
    "internalServerException",
    "modelStreamErrorException",
    "validationException",
    "throttlingException",
    "serviceUnavailableException",
)
# The OpenAI fields Converse takes (stop as stopSequences, metadata as requestMetadata, service_tier
# as serviceTier, reasoning_effort as Claude's thinking budget): see BedrockProvider.honours.
_HONOURED = frozenset({"temperature", "top_p", "max_tokens", "stop", "tools", "tool_choice"})
# requestMetadata: at most 16 pairs, keys 1..256 and values 0..256 of these characters (service-2.json).
_METADATA_TEXT = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,\-.]{0,256}")
_SERVICE_TIERS = frozenset({"default", "flex", "priority"})
# reasoning_effort as a thinking budget for Anthropic's Claude models (additionalModelRequestFields
# carries Anthropic's own `thinking` field: at least 1024 tokens, less than maxTokens).
_THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 24576, "max": 32000}
_DEFAULT_MAX_TOKENS = 4096

# An IAM principal in an AccessDenied message ("User: arn:aws:sts::123456789012:assumed-role/...")
# names the account and role: kept out of what API callers see.
_PRINCIPAL_ARN = re.compile(r"arn:aws[\w-]*:(?:iam|sts)::\d{12}:\S+")


class BedrockProvider:
    name = PROVIDER

    def __init__(self, *, client: BedrockRuntimeClient | None = None) -> None:
        self._client = client

    def models(self) -> Sequence[str]:
        # Any model id, inference profile id or ARN is passed to Bedrock, which judges it.
        return ()

    def honours(self, request: ModelRequest) -> frozenset[str]:
        honoured = set(_HONOURED)
        if _request_metadata(request) is not None:
            honoured.add("metadata")
        tier = request.options.get("service_tier")
        if tier == "auto" or tier in _SERVICE_TIERS:
            honoured.add("service_tier")
        effort = request.options.get("reasoning_effort")
        if effort == "none" or _thinking(request) is not None:
            honoured.add("reasoning_effort")
            if effort != "none":
                honoured.discard("temperature")  # Claude's thinking takes no temperature
                if request.top_p is not None and request.top_p < 0.95:
                    honoured.discard("top_p")
        return frozenset(honoured)

    def _runtime(self) -> BedrockRuntimeClient:
        # Resolved at call time, so building the provider never builds a boto3 client.
        return self._client if self._client is not None else clients().bedrock_runtime

    def _call(self, operation: Literal["converse", "converse_stream"], request: ModelRequest) -> Any:
        """Converse or ConverseStream (the same request shape) with errors mapped to Parley's."""
        converse = _translate(request)
        params: dict[str, Any] = {"modelId": request.model, "messages": converse.messages}
        if converse.system:
            params["system"] = converse.system
        if converse.inference:
            params["inferenceConfig"] = converse.inference
        if converse.tool_config is not None:
            params["toolConfig"] = converse.tool_config
        metadata = _request_metadata(request)
        if metadata is not None:
            params["requestMetadata"] = metadata
        tier = request.options.get("service_tier")
        if tier in _SERVICE_TIERS:
            params["serviceTier"] = {"type": tier}
        thinking = _thinking(request)
        if thinking is not None:
            params["additionalModelRequestFields"] = {"thinking": {"type": "enabled", "budget_tokens": thinking[0]}}
            params["inferenceConfig"] = {
                **{k: v for k, v in converse.inference.items() if k not in ("temperature", "topP")},
                **({"topP": request.top_p} if request.top_p is not None and request.top_p >= 0.95 else {}),
                "maxTokens": thinking[1],
            }
        try:
            return getattr(self._runtime(), operation)(**params)
        except ClientError as error:
            raise _client_error(error) from error
        except BotoCoreError as error:
            raise _transport_error(error) from error

    def complete(self, request: ModelRequest) -> ModelReply:
        response: ConverseResponseTypeDef = self._call("converse", request)

        texts: list[str] = []
        tool_calls: list[ToolCall] = []
        message = response["output"].get("message")
        for block in message["content"] if message else ():
            if "text" in block:
                texts.append(block["text"])
            elif "toolUse" in block:
                use = block["toolUse"]
                tool_calls.append(
                    ToolCall(
                        id=use["toolUseId"],
                        function=FunctionCall(name=use["name"], arguments=json.dumps(use["input"], ensure_ascii=False)),
                    )
                )
            # reasoningContent, citationsContent and the like have no place in an OpenAI reply.
        content = "".join(texts) if texts or not tool_calls else None
        return ModelReply(
            content=content,
            finish_reason=_finish_reason(response["stopReason"]),
            usage=_usage(response.get("usage")),
            tool_calls=tuple(tool_calls),
        )

    def stream(self, request: ModelRequest) -> Iterator[StreamEvent]:
        response = self._call("converse_stream", request)

        events = response["stream"]
        reader = _StreamReader()
        try:
            for event in events:
                yield from reader.read(event)
        except ClientError as error:  # EventStreamError: an exception event, after a 200
            raise _client_error(error) from error
        except BotoCoreError as error:
            raise _transport_error(error) from error
        except urllib3.exceptions.HTTPError as error:  # the event stream is read from urllib3 directly
            raise _transport_error(error) from error
        except (EventStreamParserError, ResponseParserError) as error:
            raise ProviderError(
                f"{PROVIDER} sent an unreadable event stream ({type(error).__name__}).", retryable=True
            ) from error
        finally:
            close = getattr(events, "close", None)
            if callable(close):
                # Cleanup only: a failure to close must not hide the outcome of the stream.
                with contextlib.suppress(BotoCoreError, urllib3.exceptions.HTTPError, OSError):
                    close()
        if reader.reason is None:
            raise ProviderError(f"{PROVIDER} ended the stream without a stop reason.", retryable=True)
        yield Finish(reader.reason, reader.usage)


class _StreamReader:
    """ConverseStream events to Parley's deltas, keeping the stop reason and usage for the Finish."""

    def __init__(self) -> None:
        self.tool_index: dict[int, int] = {}  # contentBlockIndex -> ordinal among the tool calls
        self.reason: FinishReason | None = None
        self.usage = Usage.of(0, 0)

    def _tool(self, block_index: int) -> int:
        return self.tool_index.setdefault(block_index, len(self.tool_index))

    def read(self, event: ConverseStreamOutputTypeDef) -> Iterator[StreamEvent]:
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            tool = start["start"].get("toolUse")
            if tool is not None:
                yield ToolCallDelta(
                    index=self._tool(start["contentBlockIndex"]), id=tool["toolUseId"], name=tool["name"]
                )
        elif "contentBlockDelta" in event:
            block = event["contentBlockDelta"]
            delta = block["delta"]
            if "text" in delta:
                if delta["text"]:
                    yield TextDelta(delta["text"])
            elif "toolUse" in delta:
                index = self._tool(block["contentBlockIndex"])
                if delta["toolUse"]["input"]:
                    yield ToolCallDelta(index=index, arguments=delta["toolUse"]["input"])
            # reasoningContent and citation deltas have no event in Parley's port.
        elif "messageStop" in event:
            self.reason = _finish_reason(event["messageStop"]["stopReason"])
        elif "metadata" in event:
            self.usage = _usage(event["metadata"].get("usage"))
        else:
            failure = _stream_exception(event)
            if failure is not None:
                raise failure
        # messageStart and contentBlockStop carry nothing Parley needs.


def _request_metadata(request: ModelRequest) -> dict[str, str] | None:
    """OpenAI's metadata as Converse's requestMetadata, when every pair fits its constraints."""
    metadata = request.options.get("metadata")
    if not isinstance(metadata, dict) or not metadata or len(metadata) > 16:
        return None
    fits = all(
        isinstance(k, str) and isinstance(v, str) and k and _METADATA_TEXT.fullmatch(k) and _METADATA_TEXT.fullmatch(v)
        for k, v in metadata.items()
    )
    return dict(metadata) if fits else None


def _thinking(request: ModelRequest) -> tuple[int, int] | None:
    """(budget_tokens, maxTokens) for reasoning_effort on a Claude model, else None (no effort,
    another model family, a maxTokens too small to think in, or a forced tool choice)."""
    effort = request.options.get("reasoning_effort")
    budget = _THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None or "anthropic.claude" not in request.model or request.tool_choice not in (None, "auto", "none"):
        return None
    if request.max_tokens is None:
        return budget, _DEFAULT_MAX_TOKENS + budget
    if request.max_tokens <= _THINKING_BUDGETS["minimal"]:
        return None
    return min(budget, request.max_tokens - 1), request.max_tokens


@dataclass(frozen=True)
class _Converse:
    messages: list[MessageTypeDef]
    system: list[SystemContentBlockTypeDef]
    inference: InferenceConfigurationTypeDef
    tool_config: ToolConfigurationTypeDef | None


def _translate(request: ModelRequest) -> _Converse:
    """The Converse fields for a request.

    Not sent, for want of a Converse field: `seed`, `presence_penalty` and `frequency_penalty`
    (only some models take them, through `additionalModelRequestFields`, under names of their
    own), `user` (Converse has no end-user field; `requestMetadata` is for invocation logs),
    `parallel_tool_calls` (no switch), and `response_format` (`outputConfig.textFormat` exists
    only in recent botocore releases and for some models; an older boto3 in the Lambda runtime
    would refuse the parameter before sending).
    """
    messages: list[MessageTypeDef] = []
    system: list[SystemContentBlockTypeDef] = []
    for position, message in enumerate(request.messages):
        if message.role in ("system", "developer"):
            text = _text(message, position)
            if text:  # a system block's text must not be empty
                system.append({"text": text})
            continue
        role: Literal["user", "assistant"]
        blocks: list[ContentBlockTypeDef]
        if message.role == "tool":
            role = "user"
            result: ToolResultBlockTypeDef = {
                "toolUseId": message.tool_call_id or "",
                "content": [{"text": _text(message, position)}],
            }
            blocks = [{"toolResult": result}]
        elif message.role == "user":
            role = "user"
            blocks = _blocks(message.content, position, images=True)
        else:
            role = "assistant"
            blocks = _blocks(message.content, position, images=False)
            blocks.extend(_tool_use(call, position) for call in message.tool_calls or ())
        if not blocks:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] = [*messages[-1]["content"], *blocks]
        else:
            messages.append({"role": role, "content": blocks})
    return _Converse(messages, system, _inference(request), _tool_config(request))


def _inference(request: ModelRequest) -> InferenceConfigurationTypeDef:
    inference: InferenceConfigurationTypeDef = {}
    if request.max_tokens is not None:
        inference["maxTokens"] = request.max_tokens
    if request.temperature is not None:
        if not 0 <= request.temperature <= 1:
            raise InvalidRequest("Bedrock models take a temperature between 0 and 1.", param="temperature")
        inference["temperature"] = request.temperature
    if request.top_p is not None:
        inference["topP"] = request.top_p
    stops = [stop for stop in request.stop if stop]  # Converse refuses empty stop sequences
    if stops:
        inference["stopSequences"] = stops
    return inference


def _text(message: ChatMessage, position: int) -> str:
    if isinstance(message.content, list):
        for part in message.content:
            if isinstance(part, ImagePart):
                raise InvalidRequest(
                    f"messages[{position}]: a {message.role} message cannot carry images.", param="messages"
                )
            if not isinstance(part, TextPart | RefusalPart):
                raise _part_refused(part.type, position)
    return message.text()


def _part_refused(kind: str, position: int) -> InvalidRequest:
    return InvalidRequest(
        f"messages[{position}] has a {kind} content part, which the {PROVIDER} provider cannot take.",
        code="unsupported_content_part",
        param=f"messages[{position}].content",
    )


def _blocks(content: str | list[ContentPart] | None, position: int, *, images: bool) -> list[ContentBlockTypeDef]:
    if content is None:
        return []
    if isinstance(content, str):
        # Converse refuses a blank text block (an assistant turn with only tool calls has none).
        return [{"text": content}] if content else []
    blocks: list[ContentBlockTypeDef] = []
    for part in content:
        if isinstance(part, ImagePart):
            if not images:
                raise InvalidRequest(
                    f"messages[{position}]: Bedrock takes images in user messages only.", param="messages"
                )
            blocks.append(_image(part.image_url.url, position))
        elif isinstance(part, TextPart | RefusalPart):
            text = part.text if isinstance(part, TextPart) else part.refusal
            if text:
                blocks.append({"text": text})
        else:
            raise _part_refused(part.type, position)
    return blocks


def _image(url: str, position: int) -> ContentBlockTypeDef:
    match = _DATA_URL.fullmatch(url.strip())
    if match is None:
        # Converse takes image bytes (or an S3 location), never a URL to fetch.
        raise InvalidRequest(
            f"messages[{position}]: Bedrock takes images as base64 data URLs (data:image/png;base64,...), not links.",
            param="messages",
        )
    image_format = _IMAGE_FORMATS.get(match.group(1).lower())
    if image_format is None:
        raise InvalidRequest(
            f"messages[{position}]: Bedrock takes png, jpeg, gif and webp images, not image/{match.group(1)}.",
            param="messages",
        )
    try:
        data = base64.b64decode("".join(match.group(2).split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidRequest(f"messages[{position}]: the image is not valid base64.", param="messages") from error
    if not data:
        raise InvalidRequest(f"messages[{position}]: the image is empty.", param="messages")
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def _tool_use(call: ToolCall, position: int) -> ContentBlockTypeDef:
    try:
        arguments = json.loads(call.function.arguments) if call.function.arguments.strip() else {}
    except ValueError as error:
        raise InvalidRequest(
            f"messages[{position}]: the arguments of tool call {call.id!r} are not valid JSON.", param="messages"
        ) from error
    if not isinstance(arguments, dict):
        raise InvalidRequest(
            f"messages[{position}]: the arguments of tool call {call.id!r} must be a JSON object.", param="messages"
        )
    return {"toolUse": {"toolUseId": call.id, "name": call.function.name, "input": arguments}}


def _tool_config(request: ModelRequest) -> ToolConfigurationTypeDef | None:
    # Converse has no "none" tool choice: the tools are left out instead, so the model cannot call one.
    if not request.tools or request.tool_choice == "none":
        return None
    tools: list[ToolTypeDef] = []
    for tool in request.tools:
        function = tool.function
        schema = function.parameters if function.parameters is not None else {"type": "object", "properties": {}}
        spec: ToolSpecificationTypeDef = {"name": function.name, "inputSchema": {"json": schema}}
        if function.description:  # must not be empty
            spec["description"] = function.description
        # `strict` is left out: ToolSpecification.strict is recent, and an older botocore refuses it.
        tools.append({"toolSpec": spec})
    config: ToolConfigurationTypeDef = {"tools": tools}
    choice = request.tool_choice
    # No toolChoice means auto. "any" and "tool" are taken by some models only (Anthropic Claude 3
    # and later, Mistral Large); others answer with a ValidationException.
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, ToolChoiceFunction):
        config["toolChoice"] = {"tool": {"name": choice.function.name}}
    elif choice is not None:
        raise InvalidRequest(f"Unknown tool_choice {choice!r}.", param="tool_choice")
    return config


def _finish_reason(stop_reason: str) -> FinishReason:
    return _STOP_REASONS.get(stop_reason, "stop")


def _usage(usage: TokenUsageTypeDef | None) -> Usage:
    """Usage as OpenAI counts it: Bedrock's inputTokens leave out the tokens read from or written
    to the prompt cache, which OpenAI's prompt_tokens include."""
    if not usage:
        return Usage.of(0, 0)
    read = usage.get("cacheReadInputTokens")
    written = usage.get("cacheWriteInputTokens")
    prompt = usage["inputTokens"] + (read or 0) + (written or 0)
    return Usage.of(prompt, usage["outputTokens"], read)


def _stream_exception(event: ConverseStreamOutputTypeDef) -> ProviderError | None:
    fields: Mapping[str, object] = event
    for key in _STREAM_EXCEPTIONS:
        body = fields.get(key)
        if isinstance(body, Mapping):
            message = body.get("message")
            return _error_for(key, message if isinstance(message, str) else "", None)
    return None


def _client_error(error: ClientError) -> ProviderError:
    details = error.response.get("Error", {})
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _error_for(details.get("Code", ""), details.get("Message", ""), status)


def _error_for(code: str, message: str, status: int | None) -> ProviderError:
    """The Parley error for a Bedrock error code (exception events use the member name,
    `throttlingException`, where the HTTP error says `ThrottlingException`)."""
    code = code[:1].upper() + code[1:]
    reported = _PRINCIPAL_ARN.sub("<principal>", message).strip()[:300] or "no details"
    text = f"{PROVIDER} answered {code or status or 'an error'}: {reported}"
    if code == "ThrottlingException":
        return ProviderRateLimited(text, upstream_status=status)
    if code in _REJECTED:
        return ProviderRejected(text, upstream_status=status)
    if code in _AUTH_FAILED:
        return ProviderError(text, code="provider_auth_failed", upstream_status=status)
    if code == "ModelTimeoutException":
        return ProviderTimeout(text, upstream_status=status)
    if code in _RETRYABLE:
        return ProviderError(text, retryable=True, upstream_status=status)
    if code == "ModelErrorException":
        # 424: "The request failed due to an error while processing the model." The model failed,
        # not the request (nothing for the caller to fix, so not a 400), and the API reference,
        # unlike for ModelStreamErrorException and InternalServerException, does not say to retry.
        return ProviderError(text, retryable=False, upstream_status=status)
    if status == 429:
        return ProviderRateLimited(text, upstream_status=status)
    if status in (401, 403):
        return ProviderError(text, code="provider_auth_failed", upstream_status=status)
    if status in (400, 404, 409, 413, 422):
        return ProviderRejected(text, upstream_status=status)
    return ProviderError(text, retryable=status is None or status >= 500, upstream_status=status)


def _transport_error(error: BotoCoreError | urllib3.exceptions.HTTPError) -> ProviderError:
    """The Parley error for a failure before or outside an AWS answer (no request details)."""
    kind = type(error).__name__
    if isinstance(error, (ReadTimeoutError, ConnectTimeoutError, urllib3.exceptions.TimeoutError)):
        return ProviderTimeout(f"{PROVIDER} did not answer in time ({kind}).")
    if isinstance(error, (BotoConnectionError, HTTPClientError, ConnectionClosedError, urllib3.exceptions.HTTPError)):
        return ProviderError(f"{PROVIDER} could not be reached ({kind}).", code="provider_unreachable", retryable=True)
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return ProviderError(f"{PROVIDER}: no usable AWS credentials ({kind}).", code="provider_auth_failed")
    if isinstance(error, ParamValidationError):
        # botocore checked the request against the service model before sending it.
        return ProviderRejected(f"{PROVIDER} refused the request: {str(error).strip()[:300]}")
    return ProviderError(f"{PROVIDER} failed ({kind}).")


__all__ = ["BedrockProvider"]
