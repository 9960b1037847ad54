"""Stored conversations, their messages and chat sessions (seeds 000, 001, 002)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from parley.domain.chat import ToolCall, Usage
from parley.domain.indexes import Citation
from parley.domain.records import StoredRecord

ConversationStatus = Literal["active", "archived", "handed_off"]
MessageStatus = Literal["pending", "completed", "incomplete", "error"]
MessageRole = Literal["user", "assistant", "tool"]
MAX_METADATA_BYTES = 8192
# Limits in UTF-8 bytes, so every stored item stays under DynamoDB's 400 KB (a CJK character is
# 3 bytes: 200,000 bytes is about 66,000 of them).
MAX_MESSAGE_BYTES = 200_000
MAX_PROMPT_BYTES = 100_000
ID = r"^[a-z]+_[0-9A-Z]{26}$"


def utf8_at_most(limit: int) -> AfterValidator:
    """A str validator: valid Unicode (no lone surrogates, which JSON's \\ud800 escapes can
    carry) and at most `limit` bytes in UTF-8."""

    def check(value: str) -> str:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from None
        if size > limit:
            raise ValueError(f"is {size:,} bytes in UTF-8; the limit is {limit:,} bytes")
        return value

    return AfterValidator(check)


MessageText = Annotated[str, Field(min_length=1), utf8_at_most(MAX_MESSAGE_BYTES)]
PromptText = Annotated[str, utf8_at_most(MAX_PROMPT_BYTES)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


def _absent(value: object) -> bool:
    """Optional response fields are left out rather than sent as null."""
    return value is None


def bounded_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None:
        if len(json.dumps(value, separators=(",", ":"))) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is limited to {MAX_METADATA_BYTES} bytes of JSON")
        _storable(value)
    return value


def _storable(value: Any) -> None:
    """What DynamoDB can store of a JSON value (metadata is stored as it is): map keys of at least
    one character and numbers of at most 38 digits between 1e-130 and 1e126."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not key:
                raise ValueError("metadata keys must not be empty")
            _storable(item)
    elif isinstance(value, list):
        for item in value:
            _storable(item)
    elif isinstance(value, int | float) and not isinstance(value, bool) and value != 0:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        if len(number.as_tuple().digits) > 38 or not -130 <= number.adjusted() <= 125:
            raise ValueError(
                f"metadata numbers have at most 38 digits and lie between 1e-130 and 1e126 in size (got {value!r})"
            )


class ContextSettings(_Strict):
    """How the context window is built before each model call (the context issue fills this in)."""

    strategy: Literal["full", "sliding_window", "summarize"] = "sliding_window"
    max_tokens: int | None = Field(default=None, ge=256, le=2_000_000)
    max_messages: int | None = Field(default=None, ge=1, le=150, description="at most this many messages in a window")
    summarize_after: int | None = Field(default=None, ge=2, le=100)


class ConversationCreate(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"title": "Help with billing", "user_id": "user_123", "metadata": {"page": "/billing"}}]
        }
    )

    title: str | None = Field(default=None, max_length=512)
    user_id: str | None = Field(default=None, min_length=1, max_length=256, pattern=r"^[^#]+$")
    provider_id: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, min_length=1, max_length=256)
    system_prompt: PromptText | None = None
    metadata: dict[str, Any] | None = None
    context: ContextSettings | None = None
    is_archived: bool = False  # seed 002's create field
    use_rag: bool | None = Field(
        default=None,
        description="Retrieve from the knowledge index for every reply (on by default when an index is attached; "
        "false turns it off)",
    )
    index_id: str | None = Field(default=None, max_length=64, description="A knowledge index (idx_...) for RAG")
    agent: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="the agent (agt_ id or name) that answers; its settings fill what the conversation leaves unset",
    )
    agent_version: int | None = Field(
        default=None, ge=1, description="pin this version of the agent (default: follow its latest)"
    )

    _metadata = field_validator("metadata")(bounded_metadata)


class ConversationUpdate(_Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"title": "Billing double charge", "context": {"strategy": "summarize"}}]}
    )

    title: str | None = Field(default=None, max_length=512)
    provider_id: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, min_length=1, max_length=256)
    system_prompt: PromptText | None = None
    metadata: dict[str, Any] | None = None
    context: ContextSettings | None = None
    use_rag: bool | None = Field(
        default=None,
        description="Retrieve from the knowledge index for every reply (on by default when an index is attached; "
        "false turns it off)",
    )
    index_id: str | None = Field(default=None, max_length=64, description="A knowledge index (idx_...) for RAG")
    agent: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="another agent (its agt_ id or name) answers from now on; null: none",
    )
    agent_version: int | None = Field(
        default=None, ge=1, description="pin this version of the agent (default: follow its latest)"
    )

    _metadata = field_validator("metadata")(bounded_metadata)


class ChatSession(BaseModel):
    id: str
    object: Literal["chat_session"] = "chat_session"
    conversation_id: str
    provider_id: str | None = None
    model: str
    status: Literal["active", "closed"] = "active"
    created_at: str
    updated_at: str


class SessionCreate(_Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"model": "echo"}]})

    model: str | None = Field(default=None, min_length=1, max_length=256)
    model_id: str | None = Field(default=None, min_length=1, max_length=256, description="seed 002's name for model")
    provider_id: str | None = Field(default=None, max_length=64)


class ToolResultIn(_Strict):
    """What a client tool returned, for the call the reply asked for."""

    tool_call_id: str = Field(min_length=1, max_length=128)
    output: Annotated[str, utf8_at_most(MAX_MESSAGE_BYTES // 2)]
    is_error: bool = False


class MessageSend(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"content": "Why was I charged twice?"}, {"content": "Stream the answer", "stream": True}]
        }
    )

    content: MessageText | None = Field(default=None, description="the user's message (or give tool_results)")
    tool_results: list[ToolResultIn] | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="the outputs of the client tools the last reply called: the turn continues with them",
    )
    attachments: list[str] = Field(default_factory=list, max_length=20)
    session_id: str | None = Field(default=None, max_length=64)
    stream: bool = False
    # an operator's reply during a human handoff (parley.services.handoffs): role assistant with an
    # author of type human, under the permission conversations:PostOperatorMessage
    role: Literal["user", "assistant"] = Field(
        default="user", description="assistant: an operator's reply while the conversation is handed off to a human"
    )
    author: Author | None = Field(default=None, description="who wrote an operator's reply: {type: human, id, name}")
    # seed 002 names the text `message`; accepted as an alias would clash with strictness, so not here.

    @model_validator(mode="after")
    def _one_kind(self) -> MessageSend:
        if (self.content is None) == (self.tool_results is None):
            raise ValueError("give content (a new message) or tool_results (to continue the turn), not both")
        if self.tool_results is not None:
            if self.attachments:
                raise ValueError("attachments go with content, not with tool_results")
            if self.role != "user" or self.author is not None:
                raise ValueError("tool_results continue an agent's turn: they take no role or author")
            ids = [r.tool_call_id for r in self.tool_results]
            if len(set(ids)) != len(ids):
                raise ValueError("each tool_call_id appears once in tool_results")
        return self


class Cost(BaseModel):
    amount_usd: float
    currency: Literal["usd"] = "usd"


class Author(_Strict):
    """Who wrote a message: the conversation's end user, the agent (a model), or a human operator
    (during a handoff)."""

    type: Literal["user", "agent", "human"]
    id: str | None = Field(default=None, min_length=1, max_length=256)
    name: str | None = Field(default=None, min_length=1, max_length=256)


class Message(BaseModel):
    id: str
    object: Literal["message"] = "message"
    conversation_id: str
    seq: int
    role: MessageRole
    content: str
    status: MessageStatus = "completed"
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = Field(default=None, exclude_if=_absent, description="a tool message's call")
    author: Author | None = Field(default=None, exclude_if=_absent)
    agent_id: str | None = Field(default=None, exclude_if=_absent, description="the agent that answered")
    agent_version: int | None = Field(default=None, exclude_if=_absent)
    attachments: list[str] | None = None
    model: str | None = None
    provider_id: str | None = None
    session_id: str | None = None
    usage: Usage | None = None
    cost: Cost | None = None
    error: dict[str, Any] | None = None
    citations: list[Citation] | None = Field(
        default=None, exclude_if=_absent, description="the knowledge chunks retrieved for this reply (RAG)"
    )
    created_at: str


class Conversation(BaseModel):
    id: str
    object: Literal["conversation"] = "conversation"
    title: str | None = None
    user_id: str | None = None
    status: ConversationStatus = "active"
    is_archived: bool = False
    provider_id: str | None = None
    model: str | None = None
    system_prompt: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    context: ContextSettings = Field(default_factory=ContextSettings)
    agent_id: str | None = Field(default=None, exclude_if=_absent, description="the agent that answers")
    use_rag: bool | None = Field(default=None, exclude_if=_absent)
    index_id: str | None = Field(
        default=None, exclude_if=_absent, description="the knowledge index replies retrieve from"
    )
    agent_version: int | None = Field(default=None, exclude_if=_absent, description="the pinned version, if any")
    message_count: int = 0
    created_at: str
    updated_at: str
    # a thread's: the conversation and the message it is anchored to (absent on other conversations)
    parent_id: str | None = Field(default=None, exclude_if=_absent, description="a thread's parent conversation")
    parent_message_id: str | None = Field(default=None, exclude_if=_absent, description="a thread's anchor message")
    # only with include=sessions / include=messages (the newest, oldest first); absent otherwise
    sessions: list[ChatSession] | None = Field(default=None, exclude_if=_absent, description="with include=sessions")
    messages: list[Message] | None = Field(default=None, exclude_if=_absent, description="with include=messages")
    messages_has_more: bool | None = Field(default=None, exclude_if=_absent, description="with include=messages")


class HiddenContextItem(BaseModel):
    """Injected hidden context as the API shows it (the model sees it; the default history does not)."""

    id: str
    object: Literal["hidden_context"] = "hidden_context"
    conversation_id: str
    role: Literal["system"] = "system"
    content: str
    tokens: int
    created_at: str

    @classmethod
    def of(cls, record: HiddenRecord) -> HiddenContextItem:
        return cls(
            id=record.id,
            conversation_id=record.conversation_id,
            content=record.content,
            tokens=record.tokens,
            created_at=record.created_at,
        )


class ConversationRecord(StoredRecord):
    id: str
    project_id: str
    org_id: str | None = None
    title: str | None = None
    user_id: str | None = None
    status: ConversationStatus = "active"
    provider_id: str | None = None
    model: str | None = None
    system_prompt: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    message_count: int = 0
    next_seq: int = 1
    next_hidden: int | None = None
    created_at: str
    updated_at: str
    activity: str
    version: int = 1
    # agents: the agent that answers, and its version when pinned (None: the latest)
    agent_id: str | None = None
    agent_version: int | None = None
    use_rag: bool | None = None
    index_id: str | None = None
    # threads: the conversation and message a thread is anchored to (the anchor's seq, and whether
    # the thread's context also takes the parent's messages up to it)
    parent_id: str | None = None
    parent_message_id: str | None = None
    parent_message_seq: int | None = None
    include_parent_history: bool = False
    last_message_at: str | None = None  # when the newest message was appended (storage sets it)
    # a delete in progress (parley.storage.conversations.delete_conversation): gone for every route
    deleting_at: str | None = None
    # handoffs: the pending one ({id, target, agent_id, reason, metadata, requested_at}), if any
    handoff: dict[str, Any] | None = None
    # client tools: the calls the turn waits for ({reply_seq, call_ids, step, started_seq})
    awaiting_tools: dict[str, Any] | None = None


class SessionRecord(StoredRecord):
    id: str
    conversation_id: str
    provider_id: str | None = None
    model: str
    status: Literal["active", "closed"] = "active"
    created_at: str
    updated_at: str


class MessageRecord(StoredRecord):
    id: str
    conversation_id: str
    seq: int
    role: MessageRole
    content: str = ""
    status: MessageStatus = "completed"
    session_id: str | None = None
    tool_call_id: str | None = None  # a tool message: the call it answers
    author: dict[str, Any] | None = None  # an operator's reply: {type: human, id, name}
    agent_id: str | None = None
    agent_version: int | None = None
    attachments: list[str] | None = None
    tokens: int | None = None
    created_at: str
    user_message_id: str | None = None  # a reply's own user message
    model: str | None = None
    provider_id: str | None = None
    context: dict[str, Any] | None = None  # what the reply's model call received
    usage: dict[str, Any] | None = None
    cost_usd: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    error: dict[str, Any] | None = None
    error_status: int | None = None  # the status a failed send answered, for its idempotent retries
    completed_at: str | None = None
    # events (parley.events): the organization, and the conversation version the send reserved for
    # this message's event (its `sequence`)
    org_id: str | None = None
    event_seq: int | None = None
    user_id: str | None = None  # the conversation's end user when the message was sent

    def cited(self) -> list[Citation]:
        """The knowledge chunks retrieval gave this reply's model call (stored with its context)."""
        retrieval = (self.context or {}).get("retrieval") or {}
        return [Citation.model_validate(c) for c in retrieval.get("citations", [])]


class SendKeyRecord(StoredRecord):
    """A send's Idempotency-Key: which pair it stored, and the fingerprint of its request."""

    sk: str
    request_hash: str
    user_seq: int
    reply_seq: int
    created_at: str
    expiration: int


class HiddenRecord(StoredRecord):
    """An injected hidden context item: in every model call, never in the default history."""

    id: str
    conversation_id: str
    seq: int | None = None  # its place among the pinned items (set by the store)
    role: Literal["system"] = "system"
    hidden: Literal[True] = True
    content: str
    tokens: int
    status: Literal["completed"] = "completed"
    created_at: str


class SummaryRecord(StoredRecord):
    """The conversation's summary of messages covers_from..covers_to, one version at a time."""

    id: str
    seq: int | None = None
    version: int
    covers_from: int = 1
    covers_to: int
    text: str
    tokens: int
    model: str | None = None
    created_at: str
    org_id: str | None = None
    event_seq: int | None = None  # the conversation version its write moved to (its event's sequence)


class WindowLine(StoredRecord):
    """What a context window reads of a message (a projection: less to read on every send)."""

    seq: int
    role: str
    status: str = "completed"
    content: str = ""
    tokens: int | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
