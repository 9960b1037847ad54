"""Stateless chat completions (seed 000's chatCompletion, seed 003's stateless completions)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from parley.api import sse
from parley.api.errors import body_for
from parley.api.principal import Principal
from parley.domain.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
)
from parley.domain.errors import InvalidRequest, ParleyError
from parley.domain.ids import new_id
from parley.providers import registry
from parley.providers.base import Finish, ModelProvider, ModelRequest, StreamEvent, TextDelta, ToolCallDelta


def _prepare(principal: Principal, request: ChatCompletionRequest) -> tuple[ModelProvider, ModelRequest]:
    if request.use_rag or request.index_id:
        raise InvalidRequest(
            "Retrieval (use_rag, index_id) is not available yet: no knowledge indexes exist.",
            code="feature_unavailable",
            param="use_rag" if request.use_rag else "index_id",
        )
    provider, model = registry.resolve(principal, request.model, request.provider_id)
    messages = list(request.messages)
    if request.system_message is not None and messages[0].role not in ("system", "developer"):
        messages.insert(0, ChatMessage(role="system", content=request.system_message))
    tool_choice = request.tool_choice
    return provider, ModelRequest(
        model=model,
        messages=messages,
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.output_limit,
        stop=request.stop_sequences,
        tools=request.tools or (),
        tool_choice=tool_choice,
        response_format=request.response_format,
        user=request.user,
        seed=request.seed,
        presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty,
        parallel_tool_calls=request.parallel_tool_calls,
    )


def create(principal: Principal, request: ChatCompletionRequest) -> ChatCompletion:
    provider, model_request = _prepare(principal, request)
    reply = provider.complete(model_request)
    return ChatCompletion(
        id=new_id("chatcmpl"),
        created=int(time.time()),
        model=request.model,
        choices=[
            Choice(
                message=AssistantMessage(content=reply.content, tool_calls=list(reply.tool_calls) or None),
                finish_reason=reply.finish_reason,
            )
        ],
        usage=reply.usage,
    )


def stream(principal: Principal, request: ChatCompletionRequest, request_id: str | None = None) -> Iterator[bytes]:
    """OpenAI `chat.completion.chunk` events, then `data: [DONE]`.

    Everything that can be refused is checked here, before the generator starts, and the
    provider's stream is opened before the first chunk: an error up to that point is an
    ordinary JSON error with its status. A failure after it ends the stream with an error event.
    """
    provider, model_request = _prepare(principal, request)
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return _chunks(provider, model_request, request.model, include_usage, request_id)


def _chunks(
    provider: ModelProvider, model_request: ModelRequest, model: str, include_usage: bool, request_id: str | None
) -> Iterator[bytes]:
    completion_id, created = new_id("chatcmpl"), int(time.time())
    usage_field = {"usage": None} if include_usage else {}

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return sse.data(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": choices,
                **usage_field,
                **extra,
            }
        )

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    events = provider.stream(model_request)
    first = next(events)  # the provider has answered before anything is sent
    yield chunk(choice({"role": "assistant", "content": ""}))
    try:
        for event in _prepend(first, events):
            if isinstance(event, TextDelta):
                yield chunk(choice({"content": event.text}))
            elif isinstance(event, ToolCallDelta):
                yield chunk(choice({"tool_calls": [_tool_call_delta(event)]}))
            elif isinstance(event, Finish):
                yield chunk(choice({}, event.reason))
                if include_usage:
                    yield chunk([], usage=event.usage.model_dump())
        yield sse.done()
    except ParleyError as error:
        yield sse.data(body_for(error, request_id))


def _tool_call_delta(delta: ToolCallDelta) -> dict[str, Any]:
    """OpenAI's streamed tool call piece: id, type and name on the first piece only."""
    function: dict[str, Any] = {"arguments": delta.arguments}
    piece: dict[str, Any] = {"index": delta.index}
    if delta.id is not None:
        piece.update(id=delta.id, type="function")
    if delta.name is not None:
        function = {"name": delta.name, **function}
    piece["function"] = function
    return piece


def _prepend(first: StreamEvent, rest: Iterator[StreamEvent]) -> Iterator[StreamEvent]:
    yield first
    yield from rest
