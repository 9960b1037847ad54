"""Encodings of a reply (parley.domain.replies): every wire form is built here, from the same events.

- `conversation_sse`: Parley's conversation stream, named events `start`, `text`, `tool_call`,
  `tool_result`, `done`, `error` (DESIGN.md section 3).
- `completion_chunks`: OpenAI's `chat.completion.chunk` lines and a final `data: [DONE]`.
- `completion_body`: OpenAI's buffered `chat.completion`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from parley.api import sse
from parley.api.errors import ErrorDetail, ErrorResponse, error_body
from parley.domain.chat import AssistantMessage, ChatCompletion, Choice, FinishReason, ToolCall, Usage
from parley.domain.conversations import Cost
from parley.domain.errors import stored_error
from parley.domain.indexes import Citation
from parley.domain.replies import (
    Finished,
    ReplyDone,
    ReplyEvent,
    ReplyFailed,
    ReplyStarted,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
    ToolResult,
)

# ---------------------------------------------------------------- the wire shapes (OpenAPI: parley.api.openapi_gen)


SSE_MEDIA = "text/event-stream"
# The request fields the provider that answered did not honour (left out of its call), comma-separated.
DROPPED_HEADER = "parley-dropped-params"


def dropped_headers(dropped: Iterable[str]) -> dict[str, str]:
    names = ",".join(dropped)
    return {DROPPED_HEADER: names} if names else {}


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamStart(_Wire):
    """`event: start`: the stored pair's ids (the reply is stored as it streams)."""

    type: Literal["start"] = "start"
    conversation_id: str | None
    message_id: str = Field(description="the assistant message")
    user_message_id: str | None
    citations: list[Citation] | None = Field(
        default=None, exclude_if=lambda value: value is None, description="the knowledge chunks retrieved (RAG)"
    )


class StreamText(_Wire):
    """`event: text`: the next piece of the reply's text."""

    type: Literal["text"] = "text"
    text: str


class StreamToolCall(_Wire):
    """`event: tool_call`: a whole tool call the model asked for."""

    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    input: str = Field(description="the arguments, a JSON text")


class StreamToolResult(_Wire):
    """`event: tool_result`: what a tool returned."""

    type: Literal["tool_result"] = "tool_result"
    id: str
    output: str
    is_error: bool


class StreamDone(_Wire):
    """`event: done`: the reply is complete and stored."""

    type: Literal["done"] = "done"
    message_id: str
    usage: Usage | None
    cost: Cost | None
    token_count: int | None


class StreamError(_Wire):
    """`event: error`: the reply failed (in the error model); the stream ends."""

    type: Literal["error"] = "error"
    error: ErrorDetail


_CONVERSATION_EVENTS = (StreamStart, StreamText, StreamToolCall, StreamToolResult, StreamDone, StreamError)


class ConversationStreamEvent(
    RootModel[
        Annotated[
            StreamStart | StreamText | StreamToolCall | StreamToolResult | StreamDone | StreamError,
            Field(discriminator="type"),
        ]
    ]
):
    """Server-sent events: `event: <type>` then `data: <JSON>`, the JSON one of these schemas with its
    `type` equal to the event name: start, text*, tool_call*, tool_result*, then done or error.
    `: ping` comment lines keep an idle stream alive."""


class ChunkFunction(_Wire):
    name: str | None = Field(default=None, description="on a tool call's first piece only")
    arguments: str


class ChunkToolCall(_Wire):
    index: int
    id: str | None = Field(default=None, description="on a tool call's first piece only")
    type: Literal["function"] | None = Field(default=None, description="on a tool call's first piece only")
    function: ChunkFunction


class ChunkDelta(_Wire):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ChunkToolCall] | None = None


class ChunkChoice(_Wire):
    index: int
    delta: ChunkDelta
    logprobs: None
    finish_reason: FinishReason | None


class ChatCompletionChunk(_Wire):
    """OpenAI's `chat.completion.chunk`."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str | None
    choices: list[ChunkChoice]
    usage: Usage | None = Field(
        default=None, description="with stream_options.include_usage: null, then set on the last chunk"
    )
    citations: list[Citation] | None = Field(
        default=None, description="Parley's extension, on the first chunk: the knowledge chunks retrieved (RAG)"
    )


class CompletionStreamData(RootModel[ChatCompletionChunk | ErrorResponse]):
    """Server-sent events as OpenAI streams them: unnamed `data: <JSON>` events, each a
    chat.completion.chunk (or, when the model fails mid-stream, an error in the error model),
    then `data: [DONE]`."""


def _error(event: ReplyFailed, request_id: str | None) -> dict[str, Any]:
    return error_body(event.error_type, event.code, event.message, param=event.param, request_id=request_id or None)


def _wire(event: ReplyEvent, request_id: str) -> BaseModel | None:
    """The conversation stream's event for a reply event (None: that event has no conversation event)."""
    if isinstance(event, ReplyStarted):
        return StreamStart(
            conversation_id=event.conversation_id,
            message_id=event.reply_id,
            user_message_id=event.user_message_id,
            citations=list(event.citations) or None,
        )
    if isinstance(event, TextDelta):
        return StreamText(text=event.text)
    if isinstance(event, ToolCallDone):
        call = event.call
        return StreamToolCall(id=call.id, name=call.function.name, input=call.function.arguments)
    if isinstance(event, ToolResult):
        return StreamToolResult(id=event.tool_call_id, output=event.output, is_error=event.is_error)
    if isinstance(event, ReplyDone):
        return StreamDone(
            message_id=event.reply_id,
            usage=event.usage,
            cost=event.cost,
            token_count=event.usage.total_tokens if event.usage else None,
        )
    if isinstance(event, ReplyFailed):
        return StreamError(error=ErrorDetail.model_validate(_error(event, request_id)["error"]))
    return None  # ToolCallDelta and Finished have no conversation event: the whole call and `done` carry them


def conversation_sse(events: Iterable[ReplyEvent], request_id: str = "") -> Iterator[bytes]:
    for event in events:
        wire = _wire(event, request_id)
        if wire is not None:
            data = wire.model_dump(mode="json")
            yield sse.event(data["type"], data)


def completion_chunks(
    events: Iterable[ReplyEvent], request_id: str = "", *, include_usage: bool = False
) -> Iterator[bytes]:
    started: ReplyStarted | None = None
    usage_field = {"usage": None} if include_usage else {}
    fingerprint: str | None = None

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        assert started is not None
        return sse.data(
            {
                "id": started.reply_id,
                "object": "chat.completion.chunk",
                "created": started.created,
                "model": started.model,
                "system_fingerprint": fingerprint,
                "choices": choices,
                **usage_field,
                **extra,
            }
        )

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    for event in events:
        if isinstance(event, ReplyStarted):
            started, fingerprint = event, event.system_fingerprint
            cited = {"citations": [c.model_dump(mode="json") for c in event.citations]} if event.citations else {}
            yield chunk(choice({"role": "assistant", "content": ""}), **cited)
        elif isinstance(event, TextDelta):
            yield chunk(choice({"content": event.text}))
        elif isinstance(event, ToolCallDelta):
            yield chunk(choice({"tool_calls": [_tool_call_piece(event)]}))
        elif isinstance(event, Finished):
            fingerprint = event.system_fingerprint or fingerprint
            yield chunk(choice({}, event.reason))
            if include_usage:
                yield chunk([], usage=event.usage.detailed().model_dump())
        elif isinstance(event, ReplyDone):
            yield sse.done()
        elif isinstance(event, ReplyFailed):
            yield sse.data(_error(event, request_id))


def _tool_call_piece(delta: ToolCallDelta) -> dict[str, Any]:
    """OpenAI's streamed tool call piece: id, type and name on the first piece only."""
    function: dict[str, Any] = {"arguments": delta.arguments}
    piece: dict[str, Any] = {"index": delta.index}
    if delta.id is not None:
        piece.update(id=delta.id, type="function")
    if delta.name is not None:
        function = {"name": delta.name, **function}
    piece["function"] = function
    return piece


def completion_body(events: Iterable[ReplyEvent]) -> ChatCompletion:
    """The buffered `chat.completion` of a whole reply (a failed reply raises its error)."""
    started: ReplyStarted | None = None
    text: list[str] | None = None
    calls: list[ToolCall] = []
    reason: FinishReason = "stop"
    usage: Usage | None = None
    fingerprint: str | None = None
    for event in events:
        if isinstance(event, ReplyStarted):
            started, fingerprint = event, event.system_fingerprint
        elif isinstance(event, TextDelta):
            text = [*(text or []), event.text]
        elif isinstance(event, ToolCallDone):
            calls.append(event.call)
        elif isinstance(event, Finished):
            reason, usage = event.reason, event.usage
            fingerprint = event.system_fingerprint or fingerprint
        elif isinstance(event, ReplyFailed):
            raise stored_error(event.status, event.error_type, event.code, event.message, replayed=False)
    if started is None or usage is None:
        raise ValueError("a reply needs ReplyStarted and Finished events")
    return ChatCompletion(
        id=started.reply_id,
        created=started.created,
        model=started.model,
        choices=[
            Choice(
                message=AssistantMessage(content="".join(text) if text is not None else None, tool_calls=calls or None),
                finish_reason=reason,
            )
        ],
        usage=usage.detailed(),
        system_fingerprint=fingerprint,
        citations=list(started.citations) or None,
    )


def streamed_responses(body: Any, events: Any, description: str) -> dict[int, Any]:
    """`responses=` of a route that answers `body` as JSON, or with `stream: true` a stream whose
    events' data are `events` (ConversationStreamEvent or CompletionStreamData); parley.api.openapi_gen
    turns it into the text/event-stream response."""
    if events is ConversationStreamEvent:
        names = [member.model_fields["type"].default for member in _CONVERSATION_EVENTS]
        stream: dict[str, Any] = {"model": events, "x-parley-sse": {"events": names}}
    elif events is CompletionStreamData:
        stream = {"model": events, "x-parley-sse": {"done": "[DONE]"}}
    else:
        raise TypeError(f"{events!r} is not one of parley.api.replies' streams")
    return {200: {"description": description, "content": {"application/json": {"model": body}, SSE_MEDIA: stream}}}
