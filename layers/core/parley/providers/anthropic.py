"""The Anthropic adapter: the Messages API (POST /v1/messages) over httpx, no SDK.

Parley speaks OpenAI's chat format; this module translates a request into a Messages API
request (system prompt at the top level, content blocks, strict user/assistant alternation,
tool_use/tool_result blocks) and the reply, or its server-sent events, back into the port's
shapes. Failures come out as Parley's provider errors only; the API key is sent in the
`x-api-key` header and never appears in an error (upstream text that echoes it, or an extra
header value, is redacted).

Wire format: https://docs.anthropic.com/en/api/messages and /en/api/messages-streaming.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from parley.domain.chat import (
    ChatMessage,
    ContentPart,
    FinishReason,
    FunctionCall,
    ImagePart,
    RefusalPart,
    TextPart,
    ToolCall,
    Usage,
)
from parley.domain.errors import InvalidRequest, ProviderError
from parley.providers.base import Finish, ModelReply, ModelRequest, StreamEvent, TextDelta, ToolCallDelta
from parley.providers.http import Redactor, error_for_status, error_for_transport, iter_sse, make_client

PROVIDER = "anthropic"

# Headers the adapter owns: configured extra headers never replace them.
_RESERVED_HEADERS = frozenset({"x-api-key", "anthropic-version", "content-type"})

_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    # A server tool loop paused; the turn is over as far as an OpenAI client can tell.
    "pause_turn": "stop",
    "max_tokens": "length",
    # The context window, not max_tokens, cut the reply: still a truncation.
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# The HTTP status Anthropic uses for each error type, so an `error` event inside a stream
# (which arrives with a 200) is classified like the same error answered as a status.
_ERROR_TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}

# The fields the Messages API takes (mapped: stop as stop_sequences, user and safety_identifier as
# metadata.user_id, parallel_tool_calls false as disable_parallel_tool_use, reasoning_effort as a
# thinking budget). Not among them: seed, presence_penalty, frequency_penalty, logit_bias (no
# counterpart), response_format (no JSON mode), and OpenAI's own options (store, metadata,
# service_tier, prompt_cache_*, verbosity, prediction, web_search_options, moderation).
_HONOURED = frozenset(
    {"temperature", "top_p", "max_tokens", "stop", "tools", "tool_choice", "user", "safety_identifier"}
    | {"parallel_tool_calls"}
)

# reasoning_effort as an extended thinking budget (Anthropic: at least 1024 tokens, and less than
# max_tokens, which counts thinking and answer together).
MIN_THINKING_BUDGET = 1024
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 24576, "max": 32000}


def thinking_budget(request: ModelRequest, default_max_tokens: int) -> tuple[int, int] | None:
    """(budget_tokens, max_tokens) for the request's reasoning_effort, or None without thinking:
    no effort (or "none"), a max_tokens too small to think in, or a forced tool choice (thinking
    allows only auto and none)."""
    effort = request.options.get("reasoning_effort")
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None or request.tool_choice not in (None, "auto", "none"):
        return None
    if request.max_tokens is None:
        return budget, default_max_tokens + budget
    if request.max_tokens <= MIN_THINKING_BUDGET:
        return None
    return min(budget, request.max_tokens - 1), request.max_tokens


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str = "https://api.anthropic.com",
        headers: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
        version: str = "2023-06-01",
        default_max_tokens: int = 4096,
    ) -> None:
        self._api_key = api_key
        self._url = f"{base_url.rstrip('/')}/v1/messages"
        self._extra_headers = dict(headers or {})
        self._redactor = Redactor(api_key, self._extra_headers)
        self._client = client if client is not None else make_client()
        self._version = version
        self._default_max_tokens = default_max_tokens

    def __repr__(self) -> str:
        return f"AnthropicProvider(url={self._url!r})"

    def models(self) -> Sequence[str]:
        return ()

    def honours(self, request: ModelRequest) -> frozenset[str]:
        honoured = set(_HONOURED)
        if request.options.get("safety_identifier"):
            honoured.discard("user")  # one metadata.user_id: the safety identifier's
        effort = request.options.get("reasoning_effort")
        if effort == "none" or thinking_budget(request, self._default_max_tokens) is not None:
            honoured.add("reasoning_effort")
            if effort != "none":
                # Thinking takes no temperature, and top_p only from 0.95 to 1.
                honoured.discard("temperature")
                if request.top_p is not None and request.top_p < 0.95:
                    honoured.discard("top_p")
        return frozenset(honoured)

    # -- requests ---------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {k: v for k, v in self._extra_headers.items() if k.lower() not in _RESERVED_HEADERS}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        headers["anthropic-version"] = self._version
        headers["content-type"] = "application/json"
        return headers

    def build_body(self, request: ModelRequest, *, stream: bool = False) -> dict[str, Any]:
        """The Messages API request body for a Parley request."""
        system, messages = translate_messages(request.messages)
        honoured = self.honours(request)
        body: dict[str, Any] = {
            "model": request.model,
            # Anthropic requires max_tokens; OpenAI's default is "as much as fits".
            "max_tokens": request.max_tokens if request.max_tokens is not None else self._default_max_tokens,
            "messages": messages,
        }
        thinking = thinking_budget(request, self._default_max_tokens)
        if thinking is not None:
            body["thinking"] = {"type": "enabled", "budget_tokens": thinking[0]}
            body["max_tokens"] = thinking[1]
        if system is not None:
            body["system"] = system
        if request.temperature is not None and "temperature" in honoured:
            # Anthropic's temperature runs 0..1 where OpenAI's runs 0..2: values above 1 are
            # clamped to 1 (the most random Anthropic allows) rather than refused.
            body["temperature"] = min(request.temperature, 1.0)
        if request.top_p is not None and "top_p" in honoured:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if request.tools:
            body["tools"] = [
                {
                    "name": tool.function.name,
                    **({"description": tool.function.description} if tool.function.description else {}),
                    "input_schema": tool.function.parameters or dict(_EMPTY_SCHEMA),
                }
                for tool in request.tools
            ]
            choice = _tool_choice(request)
            if choice is not None:
                body["tool_choice"] = choice
        end_user = request.options.get("safety_identifier") or request.user
        if isinstance(end_user, str) and end_user:
            body["metadata"] = {"user_id": end_user}
        # Not passed on (see _HONOURED): seed, presence_penalty and frequency_penalty have no
        # Messages API counterpart, and response_format has no equivalent JSON mode (the closest,
        # structured outputs, is model-dependent and shaped differently); the API names them in
        # parley-dropped-params.
        if stream:
            body["stream"] = True
        return body

    # -- complete ---------------------------------------------------------------------------

    def complete(self, request: ModelRequest) -> ModelReply:
        content = json.dumps(self.build_body(request)).encode()
        failure: ProviderError
        try:
            response = self._client.post(self._url, headers=self._headers(), content=content)
        except httpx.HTTPError as exc:
            failure = error_for_transport(PROVIDER, exc)
        else:
            if response.is_success:
                try:
                    return parse_message(response.json())
                except ValueError:
                    failure = ProviderError(f"{PROVIDER} answered with a body that is not JSON.", retryable=True)
                except ProviderError as exc:
                    failure = exc
            else:
                failure = error_for_status(PROVIDER, response.status_code, response.content, response.headers)
        # Raised outside the except blocks, so no httpx exception (whose request holds the
        # headers, key included) is chained to it.
        raise self._redactor.error(failure)

    # -- stream -----------------------------------------------------------------------------

    def stream(self, request: ModelRequest) -> Iterator[StreamEvent]:
        content = json.dumps(self.build_body(request, stream=True)).encode()
        failure: ProviderError
        try:
            with self._client.stream("POST", self._url, headers=self._headers(), content=content) as response:
                if response.is_success:
                    yield from _stream_events(response)
                    return
                response.read()
                failure = error_for_status(PROVIDER, response.status_code, response.content, response.headers)
        except httpx.HTTPError as exc:
            failure = error_for_transport(PROVIDER, exc)
        except ProviderError as exc:
            failure = exc
        raise self._redactor.error(failure)


# -- message translation ----------------------------------------------------------------------


def translate_messages(messages: Sequence[ChatMessage]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system, messages) for the Messages API from OpenAI-format messages.

    System and developer messages, wherever they stand, join the top-level system prompt.
    Tool messages become user messages of tool_result blocks. Consecutive messages of one role
    are merged, since Anthropic requires user and assistant turns to alternate, and in a merged
    user turn the tool_result blocks come first, as Anthropic requires.
    """
    system: list[str] = []
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for i, message in enumerate(messages):
        blocks: list[dict[str, Any]]
        if message.role in ("system", "developer"):
            text = message.text()
            if text:
                system.append(text)
            continue
        if message.role == "tool":
            role = "user"
            blocks = [_tool_result(message, i)]
        elif message.role == "user":
            role = "user"
            blocks = _content_blocks(message.content, i)
        else:
            role = "assistant"
            blocks = _content_blocks(message.content, i) + _tool_uses(message, i)
        if not blocks:
            # Anthropic refuses empty content; a message with nothing in it says nothing.
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    translated: list[dict[str, Any]] = []
    for role, blocks in turns:
        if role == "user":
            results = [b for b in blocks if b["type"] == "tool_result"]
            blocks[:] = results + [b for b in blocks if b["type"] != "tool_result"]
        translated.append({"role": role, "content": blocks})
    return ("\n\n".join(system) if system else None), translated


def _content_blocks(content: str | list[ContentPart] | None, i: int) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, ImagePart):
            blocks.append(_image_block(part, i))
        elif isinstance(part, TextPart | RefusalPart):
            text = part.text if isinstance(part, TextPart) else part.refusal
            if text:
                blocks.append({"type": "text", "text": text})
        else:
            raise InvalidRequest(
                f"messages[{i}] has a {part.type} content part, which the {PROVIDER} provider cannot take.",
                code="unsupported_content_part",
                param=f"messages[{i}].content",
            )
    return blocks


def _image_block(part: ImagePart, i: int) -> dict[str, Any]:
    url = part.image_url.url
    if url.startswith("data:"):
        header, comma, data = url[len("data:") :].partition(",")
        media_type, *options = header.split(";")
        if not comma or "base64" not in options or not media_type:
            raise InvalidRequest(
                f"messages[{i}] has an image data URL that is not base64 with a media type "
                "(expected data:image/png;base64,...).",
                param="messages",
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media_type.lower(), "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(f"messages[{i}] has an image URL that is neither http(s) nor a data URL.", param="messages")


def _tool_uses(message: ChatMessage, i: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for j, call in enumerate(message.tool_calls or ()):
        arguments = call.function.arguments
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise InvalidRequest(
                f"messages[{i}].tool_calls[{j}].function.arguments is not a JSON object.", param="messages"
            )
        blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name, "input": parsed})
    return blocks


def _tool_result(message: ChatMessage, i: int) -> dict[str, Any]:
    content: str | list[dict[str, Any]]
    content = message.content if isinstance(message.content, str) else _content_blocks(message.content, i)
    return {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": content}


def _tool_choice(request: ModelRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    result: dict[str, Any] | None
    if choice is None:
        result = {"type": "auto"} if request.parallel_tool_calls is False else None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "required":
        result = {"type": "any"}
    elif choice == "none":
        result = {"type": "none"}
    elif isinstance(choice, str):
        raise InvalidRequest(f"Unknown tool_choice {choice!r}.", param="tool_choice")
    else:
        result = {"type": "tool", "name": choice.function.name}
    # "none" takes no disable_parallel_tool_use (no tool can be used at all).
    if result is not None and request.parallel_tool_calls is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


# -- replies ----------------------------------------------------------------------------------


def _finish_reason(stop_reason: object) -> FinishReason:
    return _FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _count(value: object) -> int:
    return value if isinstance(value, int) else 0


def _usage(fields: Mapping[str, Any]) -> Usage:
    """Usage in OpenAI's terms: Anthropic's input_tokens excludes the tokens read from or
    written to the prompt cache, so the prompt is the sum of the three."""
    cache_read = fields.get("cache_read_input_tokens")
    prompt = _count(fields.get("input_tokens")) + _count(cache_read) + _count(fields.get("cache_creation_input_tokens"))
    return Usage.of(prompt, _count(fields.get("output_tokens")), cache_read if isinstance(cache_read, int) else None)


def parse_message(document: Any) -> ModelReply:
    """The port's reply for a Messages API response body."""
    if not isinstance(document, dict) or not isinstance(document.get("content"), list):
        raise ProviderError(f"{PROVIDER} answered with an unexpected body (no content list).")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in document["content"]:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(
                ToolCall(
                    id=str(block.get("id", "")),
                    function=FunctionCall(
                        name=str(block.get("name", "")), arguments=json.dumps(block.get("input", {}))
                    ),
                )
            )
        # Other blocks (thinking, server tool results, ...) have no place in an OpenAI reply.
    usage = document.get("usage")
    return ModelReply(
        content="".join(texts) if texts or not calls else None,
        finish_reason=_finish_reason(document.get("stop_reason")),
        usage=_usage(usage if isinstance(usage, dict) else {}),
        tool_calls=tuple(calls),
    )


def _stream_error(event: Mapping[str, Any], data: str) -> ProviderError:
    """The error for an `error` event, classified like the HTTP status of its error type
    (overloaded_error as Anthropic's 529, so it is retryable)."""
    error = event.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    status = _ERROR_TYPE_STATUS.get(kind, 500) if isinstance(kind, str) else 500
    return error_for_status(PROVIDER, status, data)


class _StreamState:
    """What a Messages API event stream has said so far, and the port's events for each
    new server-sent event."""

    def __init__(self) -> None:
        self.usage: dict[str, Any] = {}
        self.stop_reason: object = None
        self.finished = False
        self._tool_index: dict[int, int] = {}  # content block index -> ordinal among tool calls
        self._with_arguments: set[int] = set()

    def feed(self, event: Mapping[str, Any], data: str) -> Iterator[StreamEvent]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                self.usage.update(usage)
        elif kind == "content_block_start":
            yield from self._block_start(event)
        elif kind == "content_block_delta":
            yield from self._block_delta(event)
        elif kind == "content_block_stop":
            ordinal = self._tool_index.get(_count(event.get("index")))
            if ordinal is not None and ordinal not in self._with_arguments:
                # A call without parameters may stream no JSON; OpenAI clients expect "{}".
                yield ToolCallDelta(index=ordinal, arguments="{}")
        elif kind == "message_delta":
            delta = event.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason") is not None:
                self.stop_reason = delta["stop_reason"]
            # message_delta usage is cumulative: the fields it carries supersede message_start's.
            usage = event.get("usage")
            if isinstance(usage, dict):
                self.usage.update({k: v for k, v in usage.items() if v is not None})
        elif kind == "message_stop":
            self.finished = True
            yield Finish(_finish_reason(self.stop_reason), _usage(self.usage))
        elif kind == "error":
            raise _stream_error(event, data)
        # ping, and event types added later, are ignored, as Anthropic's versioning policy asks.

    def _block_start(self, event: Mapping[str, Any]) -> Iterator[StreamEvent]:
        block = event.get("content_block")
        if not isinstance(block, dict):
            return
        if block.get("type") == "tool_use":
            ordinal = len(self._tool_index)
            self._tool_index[_count(event.get("index"))] = ordinal
            yield ToolCallDelta(index=ordinal, id=str(block.get("id", "")), name=str(block.get("name", "")))
        elif block.get("type") == "text" and block.get("text"):
            yield TextDelta(str(block["text"]))

    def _block_delta(self, event: Mapping[str, Any]) -> Iterator[StreamEvent]:
        delta = event.get("delta")
        if not isinstance(delta, dict):
            return
        if delta.get("type") == "text_delta" and delta.get("text"):
            yield TextDelta(str(delta["text"]))
        elif delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            ordinal = self._tool_index.get(_count(event.get("index")))
            if ordinal is not None:
                self._with_arguments.add(ordinal)
                yield ToolCallDelta(index=ordinal, arguments=str(delta["partial_json"]))
        # thinking_delta, signature_delta, citations_delta: nothing an OpenAI client reads.


def _stream_events(response: httpx.Response) -> Iterator[StreamEvent]:
    """The port's events for a Messages API event stream, ending with one Finish on
    message_stop. Raises ProviderError on an `error` event; httpx errors pass through."""
    state = _StreamState()
    for sse in iter_sse(PROVIDER, response):
        try:
            event = json.loads(sse.data)
        except ValueError:
            raise ProviderError(f"{PROVIDER} sent a stream event that is not JSON.", retryable=True) from None
        if isinstance(event, dict):
            yield from state.feed(event, sse.data)
            if state.finished:
                return
    raise ProviderError(f"{PROVIDER} ended its stream before message_stop.", retryable=True)
