"""Threads (seed 001): sub-conversations anchored to a message of their parent conversation.

A thread is stored as a conversation of its own (a ConversationRecord with `parent_id`,
`parent_message_id` and a `thr_` id), so its id works wherever a conversation id does; these
are the request and the views that only threads have.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from parley.domain.conversations import ID, ConversationStatus, bounded_metadata


class ThreadCreate(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"parent_message_id": "msg_01JZ00000000000000000000AA", "title": "About the refund"},
                {"parent_message_id": "msg_01JZ00000000000000000000AA", "include_parent_history": True},
            ]
        },
    )

    parent_message_id: str = Field(pattern=ID, max_length=64, description="a user or assistant message of the parent")
    title: str | None = Field(default=None, max_length=512)
    metadata: dict[str, Any] | None = None
    include_parent_history: bool = Field(
        default=False,
        description=(
            "false: the thread's model context starts with the anchor message; true: with the parent's "
            "messages up to and including it, as many as fit the context budget"
        ),
    )

    _metadata = field_validator("metadata")(bounded_metadata)


class Thread(BaseModel):
    """A thread as the threads routes show it (the same id reads as a conversation elsewhere)."""

    id: str
    object: Literal["thread"] = "thread"
    conversation_id: str = Field(description="the parent conversation")
    parent_message_id: str
    parent_message_seq: int
    title: str | None = None
    status: ConversationStatus = "active"
    include_parent_history: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    message_count: int = 0
    last_message_at: str | None = None
    created_at: str
    updated_at: str


class ThreadAnchor(BaseModel):
    message_id: str
    seq: int = Field(description="its seq in the parent conversation")
    role: str | None = None
    tokens: int = 0
    included: bool = Field(description="false while the anchor is not a completed message with content")


class ThreadContext(BaseModel):
    """What GET .../context shows of a thread's prefix: the turns that come from its parent, in
    the model context before the thread's own messages (and the thread's summary, if any)."""

    parent_id: str
    anchor: ThreadAnchor
    include_parent_history: bool
    parent_messages: int = Field(description="the parent's messages before the anchor in the window")
    parent_tokens: int
    parent_from_seq: int | None = None
    parent_to_seq: int | None = None
