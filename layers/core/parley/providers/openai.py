"""The `openai` adapter: Chat Completions (POST {base_url}/chat/completions) over httpx, no SDK.

One adapter for every OpenAI-compatible server: OpenAI itself, Azure OpenAI deployments
(`api_version` set: `api-key` header and `api-version` query parameter), Groq, Mistral,
OpenRouter, vLLM, Ollama. Parley already speaks OpenAI's chat format, so requests pass through
almost unchanged; what differs between servers is handled here:

- `max_tokens` goes out as `max_completion_tokens` to OpenAI and Azure (the reasoning models
  refuse `max_tokens` there) and as `max_tokens` elsewhere (many compatible servers know only it);
  the `developer` role goes out as `system` to other servers, which mostly do not know it.
- Streams ask for a usage chunk (`stream_options.include_usage`); servers that ignore that get
  their usage estimated. Azure's filter-annotation chunks (no delta, or no choices), SSE comments
  (OpenRouter's keep-alives) and Groq's `x_groq.usage` are understood.
- Streamed tool calls are renumbered so each call has its own index even where a server reuses
  index 0 for parallel calls (Ollama), and a call without an id gets one.

Failures come out as Parley's provider errors only (http.py maps statuses and transport errors).
The API key and the extra headers travel in headers only, and upstream text that echoes the key
or a header value is redacted, so none reaches an error message.

Wire format: https://platform.openai.com/docs/api-reference/chat (request, response, chunk
objects); Azure: https://learn.microsoft.com/azure/ai-foundry/openai/reference.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from parley.domain.chat import ChatMessage, FinishReason, FunctionCall, ToolCall, Usage
from parley.domain.errors import ProviderError
from parley.domain.tokens import estimate_messages, estimate_text
from parley.providers.base import (
    SHAPE_FIELDS,
    Finish,
    ModelReply,
    ModelRequest,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
)
from parley.providers.http import (
    Redactor,
    error_for_status,
    error_for_transport,
    iter_sse,
    make_client,
    upstream_message,
)

PROVIDER = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"

# Headers the adapter owns: configured extra headers never replace them. The credential
# headers are only reserved when the adapter sends a key (without one, a configured
# `Authorization` header, e.g. an Entra ID token for Azure, is the credential).
_OWN_HEADERS = frozenset({"content-type", "content-length", "host"})
_CREDENTIAL_HEADERS = frozenset({"authorization", "api-key"})

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    # Deprecated function calling; Parley only sends `tools`, but a server may still say it.
    "function_call": "tool_calls",
    # Mistral: the context window, not max_tokens, cut the reply. Still a truncation.
    "model_length": "length",
}


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str = DEFAULT_BASE_URL,
        headers: Mapping[str, str] | None = None,
        api_version: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        host = httpx.URL(base).host.lower()
        self._api_key = api_key or None
        self._api_version = api_version
        self._url = f"{base}/chat/completions"
        self._params = {"api-version": api_version} if api_version is not None else None
        # OpenAI's own API and Azure OpenAI: the current parameter names and roles.
        self._openai_host = host == "api.openai.com" or api_version is not None or host.endswith(".openai.azure.com")
        self._headers = self._build_headers(headers or {})
        self._redactor = Redactor(self._api_key, headers)
        self._client = client if client is not None else make_client()

    def __repr__(self) -> str:
        return f"OpenAIProvider(url={self._url!r})"

    def models(self) -> Sequence[str]:
        return ()

    def honours(self, request: ModelRequest) -> frozenset[str]:
        # Every field goes to the server as sent (the server judges it), except those that change
        # the reply's shape, which the port cannot carry back.
        return frozenset(name for name in request.fields_set() if name not in SHAPE_FIELDS)

    # -- requests ---------------------------------------------------------------------------

    def _build_headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        reserved = _OWN_HEADERS | (_CREDENTIAL_HEADERS if self._api_key else frozenset())
        headers = {k: v for k, v in extra.items() if k.lower() not in reserved}
        if self._api_key:
            if self._api_version is not None:
                headers["api-key"] = self._api_key
            else:
                headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _message(self, message: ChatMessage) -> dict[str, Any]:
        # annotations belong to a reply, not to a request's messages
        fields = message.model_dump(exclude_none=True, exclude={"annotations", "document_id"})
        if fields["role"] == "developer" and not self._openai_host:
            fields["role"] = "system"
        return fields

    def build_body(self, request: ModelRequest, *, stream: bool = False) -> dict[str, Any]:
        """The Chat Completions request body: the fields that are set, nothing else."""
        body: dict[str, Any] = {"model": request.model, "messages": [self._message(m) for m in request.messages]}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.max_tokens is not None:
            body["max_completion_tokens" if self._openai_host else "max_tokens"] = request.max_tokens
        if request.stop:
            body["stop"] = list(request.stop)
        if request.tools:
            body["tools"] = [tool.model_dump(exclude_none=True) for tool in request.tools]
        if request.tool_choice is not None:
            choice = request.tool_choice
            body["tool_choice"] = choice if isinstance(choice, str) else choice.model_dump(exclude_none=True)
        if request.response_format is not None:
            body["response_format"] = request.response_format.model_dump(exclude_none=True)
        if request.user is not None:
            body["user"] = request.user
        if request.seed is not None:
            body["seed"] = request.seed
        if request.presence_penalty is not None:
            body["presence_penalty"] = request.presence_penalty
        if request.frequency_penalty is not None:
            body["frequency_penalty"] = request.frequency_penalty
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
        for name, value in request.options.items():
            body.setdefault(name, value)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    # -- errors -----------------------------------------------------------------------------

    def _status_error(self, response: httpx.Response) -> ProviderError:
        return error_for_status(PROVIDER, response.status_code, self._redactor.text(response.text), response.headers)

    # -- complete ---------------------------------------------------------------------------

    def complete(self, request: ModelRequest) -> ModelReply:
        body = self.build_body(request)
        failure: ProviderError
        try:
            response = self._client.post(self._url, params=self._params, headers=self._headers, json=body)
        except httpx.HTTPError as exc:
            failure = error_for_transport(PROVIDER, exc)
        else:
            if response.is_success:
                try:
                    return parse_completion(request, _json_body(response.text))
                except ProviderError as exc:
                    failure = exc
            else:
                failure = self._status_error(response)
        # Raised outside the except blocks, so no httpx exception (whose request holds the
        # headers, key included) is chained to it.
        raise self._redactor.error(failure)

    # -- stream -----------------------------------------------------------------------------

    def stream(self, request: ModelRequest) -> Iterator[StreamEvent]:
        body = self.build_body(request, stream=True)
        failure: ProviderError
        answered = False
        try:
            with self._client.stream(
                "POST", self._url, params=self._params, headers=self._headers, json=body
            ) as response:
                answered = True
                if not response.is_success:
                    response.read()
                    failure = self._status_error(response)
                elif response.headers.get("content-type", "").startswith("application/json"):
                    # A server (or proxy) that does not stream answers with one completion.
                    response.read()
                    yield from _replay(parse_completion(request, _json_body(response.text)))
                    return
                else:
                    yield from _stream_events(request, response)
                    return
        except httpx.HTTPError as exc:
            # Unreachable, timed out, or (once the server answered) the stream broke off. All
            # are retryable as such; the caller knows whether tokens were already sent.
            if answered and not isinstance(exc, httpx.TimeoutException):
                failure = ProviderError(f"{PROVIDER}'s stream broke off ({type(exc).__name__}).", retryable=True)
            else:
                failure = error_for_transport(PROVIDER, exc)
        except ProviderError as exc:
            failure = exc
        raise self._redactor.error(failure)


# -- replies ----------------------------------------------------------------------------------


def _json_body(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ProviderError(f"{PROVIDER} answered with a body that is not a JSON object.", retryable=True)
    return document


def _finish_reason(value: object) -> FinishReason:
    if value == "error":
        # OpenRouter and Mistral end a failed generation this way (OpenRouter with an error object).
        raise ProviderError(f"{PROVIDER} reported that the generation failed (finish_reason error).")
    return _FINISH_REASONS.get(value, "stop") if isinstance(value, str) else "stop"


def _usage(value: object) -> Usage | None:
    """The reported usage, or None when there is none (or it is not usable)."""
    if not isinstance(value, dict):
        return None
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    details = value.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    output_details = value.get("completion_tokens_details")
    reasoning = output_details.get("reasoning_tokens") if isinstance(output_details, dict) else None
    return Usage.of(
        prompt,
        completion,
        cached if isinstance(cached, int) else None,
        reasoning if isinstance(reasoning, int) else None,
    )


def _fingerprint(document: Mapping[str, Any]) -> str | None:
    value = document.get("system_fingerprint")
    return value if isinstance(value, str) and value else None


def _estimated_usage(request: ModelRequest, output: str) -> Usage:
    # The server reported no usage (it ignores stream_options, or omits usage altogether):
    # Parley's documented token estimate (parley.domain.tokens) stands in, so the reply is
    # still metered; it is an estimate, not the provider's count.
    return Usage.of(estimate_messages(m.text() for m in request.messages), estimate_text(output))


def _text(content: object) -> str | None:
    """Message content as text: a string, or (Mistral's reasoning models) a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text" and "text" in p]
        return "".join(str(t) for t in texts)
    return None


def _arguments(value: object) -> str:
    """Tool call arguments as JSON text (a few servers send an object instead of a string)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _error_object(error: object) -> ProviderError:
    """The error for an `{"error": {...}}` object that came with a 200 (in a stream, or as the
    body): classified by its HTTP-like code where it has one (OpenRouter's numeric `code`,
    Azure's digit string), else as a provider failure, retryable if it is a server error."""
    text = json.dumps({"error": error})
    code = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) else int(code) if isinstance(code, str) and code.isdigit() else None
    if status is not None and 400 <= status <= 599:
        return error_for_status(PROVIDER, status, text)
    kind = error.get("type") if isinstance(error, dict) else None
    return ProviderError(f"{PROVIDER} reported an error: {upstream_message(text)}", retryable=kind == "server_error")


def parse_completion(request: ModelRequest, document: Mapping[str, Any]) -> ModelReply:
    """The port's reply for a chat.completion body."""
    if document.get("error"):
        raise _error_object(document["error"])
    choices = document.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not isinstance(message, dict):
        raise ProviderError(f"{PROVIDER} answered without a choice.", retryable=True)
    content = _text(message.get("content"))
    refusal = message.get("refusal")
    if content is None and isinstance(refusal, str) and refusal:
        # The port has no refusal field: the model's refusal is its answer.
        content = refusal
    calls: list[ToolCall] = []
    for call in message.get("tool_calls") or ():
        if not isinstance(call, dict) or call.get("type", "function") != "function":
            continue  # custom (free-form) tools: Parley never declares any
        function = call.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(function, dict) or not isinstance(name, str) or not name:
            raise ProviderError(f"{PROVIDER} answered with a tool call that has no function name.", retryable=True)
        call_id = call.get("id")
        calls.append(
            ToolCall(
                id=call_id if isinstance(call_id, str) and call_id else _call_id(),
                function=FunctionCall(name=name, arguments=_arguments(function.get("arguments"))),
            )
        )
    finish = _finish_reason(choice.get("finish_reason"))
    output = (content or "") + "".join(c.function.arguments for c in calls)
    usage = _usage(document.get("usage")) or _estimated_usage(request, output)
    return ModelReply(
        content=content,
        finish_reason=finish,
        usage=usage,
        tool_calls=tuple(calls),
        system_fingerprint=_fingerprint(document),
    )


def _replay(reply: ModelReply) -> Iterator[StreamEvent]:
    """A complete reply as stream events (for servers that answer a stream request at once)."""
    if reply.content:
        yield TextDelta(reply.content)
    for i, call in enumerate(reply.tool_calls):
        yield ToolCallDelta(index=i, id=call.id, name=call.function.name, arguments=call.function.arguments)
    yield Finish(reply.finish_reason, reply.usage, reply.system_fingerprint)


# -- streams ----------------------------------------------------------------------------------


@dataclass
class _ToolCalls:
    """Streamed tool call pieces, numbered 0, 1, ... in the order the calls start.

    OpenAI numbers parallel calls by `index` and sends id and name in a call's first piece
    only. Ollama sends each call whole, all at index 0, told apart by id: a piece that brings a
    new id and a name at an index already in use starts a new call.
    """

    by_upstream: dict[int, int] = field(default_factory=dict)  # upstream index -> our index
    by_id: dict[str, int] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)  # our index -> id
    named: set[int] = field(default_factory=set)
    last: int | None = None

    def piece(self, call: Mapping[str, Any]) -> ToolCallDelta | None:
        upstream, call_id, function = call.get("index"), call.get("id"), call.get("function")
        call_id = call_id if isinstance(call_id, str) and call_id else None
        function = function if isinstance(function, dict) else {}
        name = function.get("name")
        name = name if isinstance(name, str) and name else None
        arguments = _arguments(function.get("arguments"))
        if call_id is not None and call_id in self.by_id:
            index, new = self.by_id[call_id], False
        elif isinstance(upstream, int) and upstream in self.by_upstream:
            index, new = self.by_upstream[upstream], False
            if call_id is not None and name is not None and self.ids[index] != call_id:
                index, new = self._start(upstream, call_id), True
        elif upstream is None and call_id is None and self.last is not None:
            index, new = self.last, False
        else:
            index, new = self._start(upstream if isinstance(upstream, int) else None, call_id), True
        self.last = index
        emit_name = name if index not in self.named and name is not None else None
        if emit_name is not None:
            self.named.add(index)
        if not new and emit_name is None and not arguments:
            return None
        return ToolCallDelta(index=index, id=self.ids[index] if new else None, name=emit_name, arguments=arguments)

    def _start(self, upstream: int | None, call_id: str | None) -> int:
        index = len(self.ids)
        self.ids.append(call_id or _call_id())
        self.by_id[self.ids[index]] = index
        if upstream is not None:
            self.by_upstream[upstream] = index
        return index


def _stream_events(request: ModelRequest, response: httpx.Response) -> Iterator[StreamEvent]:
    """The port's events for a chat.completion.chunk stream, ending with one Finish.
    Raises ProviderError on an error object in the stream; httpx errors pass through."""
    finish: object = None
    usage: Usage | None = None
    done = False
    output: list[str] = []  # for the usage estimate, should the server report none
    calls = _ToolCalls()
    fingerprint: str | None = None
    for sse in iter_sse(PROVIDER, response):
        if sse.data.strip() == "[DONE]":
            done = True
            break
        try:
            chunk = json.loads(sse.data)
        except ValueError:
            raise ProviderError(f"{PROVIDER} sent a stream event that is not JSON.", retryable=True) from None
        if not isinstance(chunk, dict):
            continue
        if sse.event == "error" or chunk.get("error"):
            raise _error_object(chunk.get("error") or chunk)
        # The usage chunk (choices: []) comes last, but take usage wherever it is (vLLM's
        # continuous usage stats send it on every chunk; the last is the total).
        fingerprint = _fingerprint(chunk) or fingerprint
        groq = chunk.get("x_groq")
        usage = _usage(chunk.get("usage")) or _usage(groq.get("usage") if isinstance(groq, dict) else None) or usage
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # Parley asks for one choice (n=1)
            if choice.get("finish_reason") is not None:
                # Azure sends filter annotations after the finish chunk with finish_reason null:
                # only a reason that is set counts.
                finish = choice["finish_reason"]
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue  # Azure's content filter annotations carry no delta
            text = delta.get("content")
            if not isinstance(text, str) or not text:
                # The port has no refusal field: a refusal is what the model says.
                text = delta.get("refusal")
            if isinstance(text, str) and text:
                output.append(text)
                yield TextDelta(text)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict) and call.get("type", "function") == "function":
                    piece = calls.piece(call)
                    if piece is not None:
                        output.append(piece.arguments)
                        yield piece
    if not done and finish is None:
        raise ProviderError(f"{PROVIDER}'s stream ended before the reply was complete.", retryable=True)
    reason = _finish_reason(finish)
    yield Finish(reason, usage or _estimated_usage(request, "".join(output)), fingerprint)
