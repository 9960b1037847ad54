"""Parley's events: the envelope and the catalogue (what EventBridge carries as `detail` and what
a webhook POSTs as its body).

Every event is an envelope: `id` (`evt_`, derived from the committed change it reports, so a
redelivered change yields the same id: dedupe on it), `type`, `created_at` (when the change
committed), `project_id`, `org_id`, `conversation_id` (for `chat.*` events), `sequence` and
`data`. `data` holds ids and what a consumer needs without reading back; never a secret. Message
content is carried only by the events about that message, bounded to CONTENT_LIMIT characters
with `content_truncated` set when it was cut.

`sequence` orders one conversation's events: it is the conversation's version after the change
(every write to a conversation is conditioned on its version and moves it; a send reserves one
number for its user message and one for its reply), so it is strictly increasing in history order
and gaps are normal (hidden context moves it without an event). Deliveries may arrive out of
order (EventBridge and SQS do not keep order): a consumer that needs order sorts by `sequence`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CONTENT_LIMIT = 4_000  # characters of message content an event carries
SOURCE = "parley"  # EventBridge source; detail-type is the event's type


class EventData(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^evt_[0-9A-HJKMNP-TV-Z]{26}$", description="Unique per change; the same when redelivered")
    object: Literal["event"] = "event"
    type: str
    created_at: str = Field(description="When the change committed (ISO 8601, UTC)")
    project_id: str
    org_id: str | None = None
    conversation_id: str | None = Field(default=None, description="Set on every chat.* event")
    sequence: int | None = Field(
        default=None, ge=1, description="Orders one conversation's events (strictly increasing, with gaps)"
    )


# --- data --------------------------------------------------------------------------------------


class ConversationData(EventData):
    """A conversation as it is after the change (what the API's conversation object shows, less
    messages and sessions)."""

    conversation_id: str
    title: str | None = None
    user_id: str | None = None
    status: Literal["active", "archived", "handed_off"]
    model: str | None = None
    provider_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    message_count: int
    created_at: str
    updated_at: str
    # a thread is a conversation with a parent: its events are the conversation events, with these set
    parent_id: str | None = Field(default=None, description="A thread's parent conversation (null otherwise)")
    parent_message_id: str | None = Field(default=None, description="A thread's anchor message (null otherwise)")


class ConversationUpdatedData(ConversationData):
    changed: list[str] = Field(description="The fields the update changed")


class ConversationDeletedData(EventData):
    conversation_id: str
    user_id: str | None = None
    message_count: int
    parent_id: str | None = Field(default=None, description="A thread's parent conversation (null otherwise)")


class TokenUsage(EventData):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ErrorInfo(EventData):
    type: str
    code: str | None = None
    message: str


class ActorData(EventData):
    """Who wrote a message or resolved a handoff: an operator (`human`), Parley (`system`), or
    an API key (`api_key`)."""

    type: Literal["user", "agent", "human", "system", "api_key"]
    id: str | None = None
    name: str | None = None


class MessageSentData(EventData):
    conversation_id: str
    message_id: str
    seq: int
    role: Literal["user"] = "user"
    user_id: str | None = None
    session_id: str | None = None
    content: str
    content_truncated: bool = False
    attachments: list[str] = Field(default_factory=list)
    tokens: int | None = None
    created_at: str


class ReplyData(EventData):
    conversation_id: str
    message_id: str
    user_message_id: str | None = None
    seq: int
    user_id: str | None = None
    session_id: str | None = None
    model: str | None = None
    provider_id: str | None = None
    content: str
    content_truncated: bool = False
    token_count: int = Field(description="Total tokens of the model call (prompt + completion)")
    usage: TokenUsage | None = None
    cost_usd: str | None = Field(default=None, description="Decimal string; null when the model has no known price")
    tool_calls: int = Field(default=0, description="How many tool calls the reply made")
    completed_at: str | None = None
    author: ActorData | None = Field(
        default=None, description="An operator's reply during a human handoff: who wrote it (no model was called)"
    )


class ResponseCompletedData(ReplyData):
    status: Literal["completed"] = "completed"


class MessageFailedData(ReplyData):
    status: Literal["error", "incomplete"]
    error: ErrorInfo | None = None


class ContextSummarizedData(EventData):
    conversation_id: str
    summary_id: str
    version: int
    covers_from: int
    covers_to: int
    message_count: int = Field(description="How many messages the summary replaces in the context window")
    tokens: int
    model: str | None = None


class HandoffData(EventData):
    """A conversation handed to a human or another agent (requested), or taken back (resolved).
    A handoff to an agent is resolved at once: both events come, in sequence order."""

    conversation_id: str
    handoff_id: str
    user_id: str | None = None
    target: Literal["human", "agent"]
    agent_id: str | None = None
    reason: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    requested_at: str
    resolved_at: str | None = Field(default=None, description="Set on chat.handoff_resolved")
    resolution: str | None = Field(default=None, description="Set on chat.handoff_resolved")
    resolved_by: ActorData | None = Field(default=None, description="Set on chat.handoff_resolved")


class WebhookTestData(EventData):
    webhook_id: str
    message: str = "This is a test event from Parley."


class WebhookDisabledData(EventData):
    webhook_id: str
    url: str
    reason: str
    failing_since: str | None = None


# --- the catalogue -------------------------------------------------------------------------------


class ConversationCreated(Envelope):
    type: Literal["chat.conversation_created"] = "chat.conversation_created"
    data: ConversationData


class ConversationUpdated(Envelope):
    type: Literal["chat.conversation_updated"] = "chat.conversation_updated"
    data: ConversationUpdatedData


class ConversationArchived(Envelope):
    type: Literal["chat.conversation_archived"] = "chat.conversation_archived"
    data: ConversationData


class ConversationUnarchived(Envelope):
    type: Literal["chat.conversation_unarchived"] = "chat.conversation_unarchived"
    data: ConversationData


class ConversationDeleted(Envelope):
    type: Literal["chat.conversation_deleted"] = "chat.conversation_deleted"
    data: ConversationDeletedData


class MessageSent(Envelope):
    type: Literal["chat.message_sent"] = "chat.message_sent"
    data: MessageSentData


class ResponseCompleted(Envelope):
    type: Literal["chat.response_completed"] = "chat.response_completed"
    data: ResponseCompletedData


class MessageFailed(Envelope):
    type: Literal["chat.message_failed"] = "chat.message_failed"
    data: MessageFailedData


class ContextSummarized(Envelope):
    type: Literal["chat.context_summarized"] = "chat.context_summarized"
    data: ContextSummarizedData


class HandoffRequested(Envelope):
    type: Literal["chat.handoff_requested"] = "chat.handoff_requested"
    data: HandoffData


class HandoffResolved(Envelope):
    type: Literal["chat.handoff_resolved"] = "chat.handoff_resolved"
    data: HandoffData


class WebhookTest(Envelope):
    type: Literal["webhook.test"] = "webhook.test"
    data: WebhookTestData


class WebhookDisabled(Envelope):
    type: Literal["webhook.endpoint_disabled"] = "webhook.endpoint_disabled"
    data: WebhookDisabledData


CATALOGUE: tuple[type[Envelope], ...] = (
    ConversationCreated,
    ConversationUpdated,
    ConversationArchived,
    ConversationUnarchived,
    ConversationDeleted,
    MessageSent,
    ResponseCompleted,
    MessageFailed,
    ContextSummarized,
    HandoffRequested,
    HandoffResolved,
    WebhookTest,
    WebhookDisabled,
)
TYPES: tuple[str, ...] = tuple(str(model.model_fields["type"].default) for model in CATALOGUE)

Event = Annotated[
    ConversationCreated
    | ConversationUpdated
    | ConversationArchived
    | ConversationUnarchived
    | ConversationDeleted
    | MessageSent
    | ResponseCompleted
    | MessageFailed
    | ContextSummarized
    | HandoffRequested
    | HandoffResolved
    | WebhookTest
    | WebhookDisabled,
    Field(discriminator="type"),
]


def bounded(content: str) -> tuple[str, bool]:
    """Message content as an event carries it: at most CONTENT_LIMIT characters, and whether it was cut."""
    return (content[:CONTENT_LIMIT], True) if len(content) > CONTENT_LIMIT else (content, False)


def matches(pattern: str, event_type: str) -> bool:
    """A webhook's event type filter: an exact type, `chat.*` (a prefix up to a dot), or `*`."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type
