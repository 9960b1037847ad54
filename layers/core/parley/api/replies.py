"""Encodings of a reply (parley.domain.replies): every wire form is built here, from the same events.

- `conversation_sse`: Parley's conversation stream, named events `start`, `text`, `tool_call`,
  `tool_result`, `done`, `error` (DESIGN.md section 3).
- `completion_chunks`: OpenAI's `chat.completion.chunk` lines and a final `data: [DONE]`.
- `completion_body`: OpenAI's buffered `chat.completion`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from parley.api import sse
from parley.api.errors import error_body
from parley.domain.chat import AssistantMessage, ChatCompletion, Choice, FinishReason, ToolCall, Usage
from parley.domain.errors import stored_error
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


def _error(event: ReplyFailed, request_id: str | None) -> dict[str, Any]:
    return error_body(event.error_type, event.code, event.message, param=event.param, request_id=request_id or None)


def conversation_sse(events: Iterable[ReplyEvent], request_id: str = "") -> Iterator[bytes]:
    for event in events:
        if isinstance(event, ReplyStarted):
            yield sse.event(
                "start",
                {
                    "type": "start",
                    "conversation_id": event.conversation_id,
                    "message_id": event.reply_id,
                    "user_message_id": event.user_message_id,
                },
            )
        elif isinstance(event, TextDelta):
            yield sse.event("text", {"type": "text", "text": event.text})
        elif isinstance(event, ToolCallDone):
            call = event.call
            yield sse.event(
                "tool_call",
                {"type": "tool_call", "id": call.id, "name": call.function.name, "input": call.function.arguments},
            )
        elif isinstance(event, ToolResult):
            yield sse.event(
                "tool_result",
                {"type": "tool_result", "id": event.tool_call_id, "output": event.output, "is_error": event.is_error},
            )
        elif isinstance(event, ReplyDone):
            yield sse.event(
                "done",
                {
                    "type": "done",
                    "message_id": event.reply_id,
                    "usage": event.usage.model_dump() if event.usage else None,
                    "cost": event.cost.model_dump() if event.cost else None,
                    "token_count": event.usage.total_tokens if event.usage else None,
                },
            )
        elif isinstance(event, ReplyFailed):
            yield sse.event("error", {"type": "error", **_error(event, request_id)})
        # ToolCallDelta and Finished have no conversation event: the whole call and `done` carry them


def completion_chunks(
    events: Iterable[ReplyEvent], request_id: str = "", *, include_usage: bool = False
) -> Iterator[bytes]:
    started: ReplyStarted | None = None
    usage_field = {"usage": None} if include_usage else {}

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        assert started is not None
        return sse.data(
            {
                "id": started.reply_id,
                "object": "chat.completion.chunk",
                "created": started.created,
                "model": started.model,
                "system_fingerprint": None,
                "choices": choices,
                **usage_field,
                **extra,
            }
        )

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    for event in events:
        if isinstance(event, ReplyStarted):
            started = event
            yield chunk(choice({"role": "assistant", "content": ""}))
        elif isinstance(event, TextDelta):
            yield chunk(choice({"content": event.text}))
        elif isinstance(event, ToolCallDelta):
            yield chunk(choice({"tool_calls": [_tool_call_piece(event)]}))
        elif isinstance(event, Finished):
            yield chunk(choice({}, event.reason))
            if include_usage:
                yield chunk([], usage=event.usage.model_dump(exclude_none=True))
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
    for event in events:
        if isinstance(event, ReplyStarted):
            started = event
        elif isinstance(event, TextDelta):
            text = [*(text or []), event.text]
        elif isinstance(event, ToolCallDone):
            calls.append(event.call)
        elif isinstance(event, Finished):
            reason, usage = event.reason, event.usage
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
        usage=usage,
    )
