"""A reply as data: the typed events every model-calling service yields, whatever the encoding.

Services produce one sequence per reply:

    ReplyStarted  TextDelta* ToolCallDelta*  Finished  ToolCallDone*  (ReplyDone | ReplyFailed)
                                       \\-- or, when the model fails mid-way: ReplyFailed

and `parley.api.replies` encodes it: Parley's conversation SSE, OpenAI's `chat.completion.chunk`
stream, and the buffered JSON bodies. Adding an encoding touches no service; resumable streams,
events and webhooks can store or report the same events.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from parley.domain.chat import FinishReason, ToolCall, Usage
from parley.domain.conversations import Cost
from parley.domain.errors import ParleyError
from parley.domain.indexes import Citation


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReplyStarted(_Event):
    type: Literal["start"] = "start"
    reply_id: str  # the assistant message (sends) or the chat.completion id (completions)
    model: str
    created: int  # Unix seconds
    conversation_id: str | None = None
    user_message_id: str | None = None
    citations: tuple[Citation, ...] = ()  # what retrieval (RAG) gave the model, when it ran
    system_fingerprint: str | None = None  # when the provider gave one before the reply


class TextDelta(_Event):
    type: Literal["text"] = "text"
    text: str


class ToolCallDelta(_Event):
    """A piece of tool call `index` as the model streams it (id and name on its first piece)."""

    type: Literal["tool_call_delta"] = "tool_call_delta"
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Finished(_Event):
    """The model stopped: why, and what it used."""

    type: Literal["finish"] = "finish"
    reason: FinishReason
    usage: Usage
    system_fingerprint: str | None = None  # when the provider gave one


class ToolCallDone(_Event):
    """A whole tool call, once the model has finished streaming it."""

    type: Literal["tool_call"] = "tool_call"
    call: ToolCall


class ToolResult(_Event):
    """What a tool returned (agents run tools between model calls)."""

    type: Literal["tool_result"] = "tool_result"
    tool_call_id: str
    output: str
    is_error: bool = False


class ReplyDone(_Event):
    """The reply is complete (and, for sends, stored)."""

    type: Literal["done"] = "done"
    reply_id: str
    usage: Usage | None = None
    cost: Cost | None = None


class ReplyFailed(_Event):
    """The reply ended in an error, in the error model's terms."""

    type: Literal["error"] = "error"
    status: int
    error_type: str
    code: str
    message: str
    param: str | None = None

    @classmethod
    def of(cls, error: ParleyError) -> ReplyFailed:
        return cls(
            status=error.status, error_type=error.type, code=error.code, message=error.message, param=error.param
        )


ReplyEvent = Annotated[
    ReplyStarted | TextDelta | ToolCallDelta | Finished | ToolCallDone | ToolResult | ReplyDone | ReplyFailed,
    Field(discriminator="type"),
]
