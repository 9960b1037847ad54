"""OpenAI's Responses stream: a reply's events (parley.domain.replies) as typed server-sent events.

    response.created, response.in_progress,
    per output item: response.output_item.added,
        a message: response.content_part.added, response.output_text.delta*, response.output_text.done,
                   response.content_part.done
        a function call: response.function_call_arguments.delta*, response.function_call_arguments.done
      response.output_item.done,
    then response.completed (or response.incomplete; on a failure: error, then response.failed)

each as `event: <type>` and `data: <JSON>` with a `sequence_number` from 0. Item ids are the ones the
stored response answers on retrieve (parley.domain.responses.output_items).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel

from parley.api import sse
from parley.domain.chat import FunctionCall, ToolCall
from parley.domain.replies import Finished, ReplyDone, ReplyFailed, ReplyStarted, TextDelta, ToolCallDelta
from parley.domain.responses import function_item, function_item_id, message_item
from parley.services.responses import Streamed

EVENT_TYPES = (
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "error",
)


class ResponseStreamEvent(BaseModel):
    """One event of the Responses stream (OpenAI's ResponseStreamEvent): its `type` is the SSE
    event name, `sequence_number` counts from 0."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description=" | ".join(EVENT_TYPES))
    sequence_number: int


class ResponsesStreamData(RootModel[ResponseStreamEvent]):
    """Server-sent events: `event: <type>` then `data: <JSON>` (OpenAI's Responses stream)."""


class _Encoder:
    def __init__(self, streamed: Streamed) -> None:
        self.streamed = streamed
        self.seq = 0
        self.output_index = -1
        self.text: list[str] | None = None  # the open message item's text
        self.message_id = streamed.skeleton.output[0]["id"] if streamed.skeleton.output else ""
        self.reply_id = ""
        self.calls: dict[int, dict[str, Any]] = {}  # tool call index -> {output_index, id, call_id, name, arguments}
        self.open_call: int | None = None
        self.message_index = -1

    def emit(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return sse.event(kind, payload)

    def response(self, **changes: Any) -> dict[str, Any]:
        return self.streamed.skeleton.model_copy(update=changes).model_dump(mode="json")

    def open_message(self) -> Iterator[bytes]:
        self.output_index += 1
        self.text = []
        yield self.emit(
            "response.output_item.added",
            output_index=self.output_index,
            item=message_item(self.reply_id, None, "in_progress"),
        )
        yield self.emit(
            "response.content_part.added",
            item_id=self.reply_id,
            output_index=self.output_index,
            content_index=0,
            part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
        )

    def close_message(self, status: str = "completed") -> Iterator[bytes]:
        if self.text is None:
            return
        text, self.text = "".join(self.text), None
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        where = {"item_id": self.reply_id, "output_index": self.message_index, "content_index": 0}
        yield self.emit("response.output_text.done", text=text, logprobs=[], **where)
        yield self.emit("response.content_part.done", part=part, **where)
        yield self.emit(
            "response.output_item.done",
            output_index=self.message_index,
            item=message_item(self.reply_id, text, status),
        )

    def close_call(self, status: str = "completed") -> Iterator[bytes]:
        if self.open_call is None:
            return
        call, self.open_call = self.calls[self.open_call], None
        yield self.emit(
            "response.function_call_arguments.done",
            item_id=call["id"],
            output_index=call["output_index"],
            name=call["name"],
            arguments=call["arguments"],
        )
        tool_call = ToolCall(id=call["call_id"], function=FunctionCall(name=call["name"], arguments=call["arguments"]))
        yield self.emit(
            "response.output_item.done",
            output_index=call["output_index"],
            item=function_item(call["id"], tool_call, status),
        )

    def text_delta(self, text: str) -> Iterator[bytes]:
        if self.text is None:
            yield from self.close_call()
            yield from self.open_message()
            self.message_index = self.output_index
        assert self.text is not None
        self.text.append(text)
        yield self.emit(
            "response.output_text.delta",
            item_id=self.reply_id,
            output_index=self.message_index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def call_delta(self, delta: ToolCallDelta) -> Iterator[bytes]:
        if delta.index not in self.calls:
            yield from self.close_message()
            yield from self.close_call()
            self.output_index += 1
            call: dict[str, Any] = {
                "output_index": self.output_index,
                "id": function_item_id(self.reply_id, len(self.calls)),
                "call_id": delta.id or "",
                "name": delta.name or "",
                "arguments": "",
            }
            self.calls[delta.index] = call
            self.open_call = delta.index
            tool_call = ToolCall(id=call["call_id"], function=FunctionCall(name=call["name"], arguments=""))
            yield self.emit(
                "response.output_item.added",
                output_index=call["output_index"],
                item=function_item(call["id"], tool_call, "in_progress"),
            )
        piece = self.calls[delta.index]
        if delta.arguments:
            piece["arguments"] += delta.arguments
            yield self.emit(
                "response.function_call_arguments.delta",
                item_id=piece["id"],
                output_index=piece["output_index"],
                delta=delta.arguments,
            )

    def events(self, request_id: str) -> Iterator[bytes]:
        for event in self.streamed.events:
            if isinstance(event, ReplyStarted):
                self.reply_id = event.reply_id
                yield self.emit("response.created", response=self.response())
                yield self.emit("response.in_progress", response=self.response())
            elif isinstance(event, TextDelta):
                yield from self.text_delta(event.text)
            elif isinstance(event, ToolCallDelta):
                yield from self.call_delta(event)
            elif isinstance(event, Finished):
                status = "incomplete" if event.reason in ("length", "content_filter") else "completed"
                yield from self.close_message(status)
                yield from self.close_call()
            elif isinstance(event, ReplyDone):
                final = self.final()
                kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
                yield self.emit(kind, response=final)
            elif isinstance(event, ReplyFailed):
                yield from self.close_message("incomplete")
                yield from self.close_call("incomplete")
                yield self.emit("error", code=event.code, message=event.message, param=event.param)
                yield self.emit("response.failed", response=self.final())

    def final(self) -> dict[str, Any]:
        if self.streamed.final:
            return self.streamed.final[-1].model_dump(mode="json")
        return self.response(status="failed")  # pragma: no cover - the service sets it before its last event


def response_events(streamed: Streamed, request_id: str = "") -> Iterator[bytes]:
    return _Encoder(streamed).events(request_id)
