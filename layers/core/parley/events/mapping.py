"""What a committed change means: a stream record's images (decoded to plain dicts) -> the
events it yields (domain.events). Pure: no I/O, so a redelivered record yields the same events
with the same ids.

    conversations, sk "conversation":  INSERT -> chat.conversation_created (a thread's too, with
                                                 data.parent_id and parent_message_id set)
                                       MODIFY -> archived / unarchived (a status change), else
                                                 conversation_updated (a field the API shows);
                                                 a send's, hidden context's or handoff's move: nothing
                                       REMOVE -> chat.conversation_deleted
    conversations, sk "handoff#...":   INSERT -> chat.handoff_requested (and chat.handoff_resolved
                                                 too when it is stored resolved: a handoff to an agent)
                                       MODIFY from pending to resolved -> chat.handoff_resolved
    messages, seq >= 1:  INSERT of a user message -> chat.message_sent
                         MODIFY of a reply leaving `pending` -> chat.response_completed, or
                                chat.message_failed (error, incomplete)
    messages, seq 0 (the summary): a new version -> chat.context_summarized

Everything else (sessions, send keys, the message index, thread items, hidden context, a delete's
mark and the purge after it) yields nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from parley.domain.clock import iso
from parley.domain.conversations import ConversationRecord, MessageRecord, SummaryRecord
from parley.domain.events import (
    ActorData,
    ContextSummarized,
    ContextSummarizedData,
    ConversationArchived,
    ConversationCreated,
    ConversationData,
    ConversationDeleted,
    ConversationDeletedData,
    ConversationUnarchived,
    ConversationUpdated,
    ConversationUpdatedData,
    Envelope,
    ErrorInfo,
    HandoffData,
    HandoffRequested,
    HandoffResolved,
    MessageFailed,
    MessageFailedData,
    MessageSent,
    MessageSentData,
    ResponseCompleted,
    ResponseCompletedData,
    TokenUsage,
    bounded,
)
from parley.domain.handoffs import HANDOFF_SK_PREFIX, HandoffRecord
from parley.domain.ids import derived_id

CONVERSATION_SK = "conversation"
SUMMARY_SEQ = 0
# the conversation fields the API shows: a change to one of them is chat.conversation_updated
VISIBLE = ("title", "user_id", "model", "provider_id", "system_prompt", "metadata", "context")
KEYS = ("pk", "sk", "list_project", "list_owner", "pending_shard", "handoff_queue", "handoff_at")


@dataclass(frozen=True)
class Change:
    """One stream record: its id (the same when redelivered), what happened, when (the stream's
    approximate time, seconds), and the item before and after, decoded."""

    record_id: str
    table: Literal["conversations", "messages"]
    kind: Literal["INSERT", "MODIFY", "REMOVE"]
    approximate_at: datetime
    keys: dict[str, Any]
    old: dict[str, Any] | None
    new: dict[str, Any] | None


def events_of(change: Change) -> list[Envelope]:
    if change.table == "conversations":
        return _conversation_events(change)
    return _message_events(change)


def _scope(pk: str) -> tuple[str, str]:
    project_id, _, conversation_id = pk.partition("#")
    return project_id, conversation_id


def _ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass(frozen=True)
class Scope:
    project_id: str
    conversation_id: str
    org_id: str | None


def _envelope(
    change: Change, model: type[Envelope], at: str, scope: Scope, *, sequence: int | None, data: Any
) -> Envelope:
    kind = str(model.model_fields["type"].default)
    return model.model_validate(
        {
            "id": derived_id("evt", _ms(at), f"{change.record_id}#{kind}"),
            "created_at": at,
            "project_id": scope.project_id,
            "org_id": scope.org_id,
            "conversation_id": scope.conversation_id,
            "sequence": sequence if sequence is None or sequence >= 1 else None,
            "data": data,
        }
    )


def _record(item: dict[str, Any], model: type[Any]) -> Any:
    return model(**{k: v for k, v in item.items() if k not in KEYS})


# --- conversations -------------------------------------------------------------------------------


def _conversation_data(record: ConversationRecord) -> dict[str, Any]:
    return {
        "conversation_id": record.id,
        "title": record.title,
        "user_id": record.user_id,
        "status": record.status,
        "model": record.model,
        "provider_id": record.provider_id,
        "metadata": record.metadata,
        "message_count": record.message_count,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "parent_id": record.parent_id,
        "parent_message_id": record.parent_message_id,
    }


# A handoff's own item says it was requested or resolved (parley.domain.handoffs): the status
# change to handed_off and back (a handoff to a human) is no event of its own, and a handoff to an
# agent changes no status at all.
STATUS_EVENTS: dict[tuple[str, str], type[Envelope]] = {
    ("active", "archived"): ConversationArchived,
    ("archived", "active"): ConversationUnarchived,
}


def _conversation_events(change: Change) -> list[Envelope]:
    if str(change.keys.get("sk")).startswith(HANDOFF_SK_PREFIX):
        return _handoff_events(change)
    if str(change.keys.get("sk")) != CONVERSATION_SK:
        return []
    if change.kind == "REMOVE":
        if change.old is None:
            return []
        gone: ConversationRecord = _record(change.old, ConversationRecord)
        return [
            _envelope(
                change,
                ConversationDeleted,
                iso(change.approximate_at),
                Scope(gone.project_id, gone.id, gone.org_id),
                sequence=gone.version + 1,
                data=ConversationDeletedData(
                    conversation_id=gone.id,
                    user_id=gone.user_id,
                    message_count=gone.message_count,
                    parent_id=gone.parent_id,
                ),
            )
        ]
    if change.new is None:
        return []
    record: ConversationRecord = _record(change.new, ConversationRecord)
    scope = Scope(record.project_id, record.id, record.org_id)
    if change.kind == "INSERT":
        data = ConversationData(**_conversation_data(record))
        return [_envelope(change, ConversationCreated, record.created_at, scope, sequence=record.version, data=data)]
    before: ConversationRecord = _record(change.old or {}, ConversationRecord) if change.old else record
    moved = STATUS_EVENTS.get((before.status, record.status))
    if moved is not None:
        data = ConversationData(**_conversation_data(record))
        return [_envelope(change, moved, record.updated_at, scope, sequence=record.version, data=data)]
    changed = [name for name in VISIBLE if getattr(before, name) != getattr(record, name)]
    if not changed:
        return []  # a send, hidden context: their own events (if any) come from the messages
    updated = ConversationUpdatedData(**_conversation_data(record), changed=changed)
    return [_envelope(change, ConversationUpdated, record.updated_at, scope, sequence=record.version, data=updated)]


def _handoff_events(change: Change) -> list[Envelope]:
    if change.kind == "REMOVE" or change.new is None:
        return []  # a deleted conversation's purge: chat.conversation_deleted says it
    handoff: HandoffRecord = _record(change.new, HandoffRecord)
    scope = Scope(handoff.project_id, handoff.conversation_id, handoff.org_id)
    asked = {
        "conversation_id": handoff.conversation_id,
        "handoff_id": handoff.id,
        "user_id": handoff.user_id,
        "target": handoff.target,
        "agent_id": handoff.agent_id,
        "reason": handoff.reason,
        "requested_at": handoff.requested_at,
    }
    found: list[Envelope] = []
    if change.kind == "INSERT":
        # the request's metadata (a resolution may merge more into it later)
        requested = HandoffData(**asked, metadata=handoff.metadata)
        found.append(
            _envelope(change, HandoffRequested, handoff.requested_at, scope, sequence=handoff.event_seq, data=requested)
        )
    was = (change.old or {}).get("status") if change.kind == "MODIFY" else None
    if handoff.status == "resolved" and (change.kind == "INSERT" or was == "pending"):
        resolved = HandoffData(
            **asked,
            metadata=handoff.metadata,
            resolved_at=handoff.resolved_at,
            resolution=handoff.resolution,
            resolved_by=ActorData(**handoff.resolved_by) if handoff.resolved_by else None,
        )
        at = handoff.resolved_at or iso(change.approximate_at)
        found.append(_envelope(change, HandoffResolved, at, scope, sequence=handoff.resolved_seq, data=resolved))
    return found


# --- messages ------------------------------------------------------------------------------------


def _message_events(change: Change) -> list[Envelope]:
    if change.kind == "REMOVE" or change.new is None:
        return []  # a deleted conversation's purge: chat.conversation_deleted says it
    seq = int(change.keys.get("sk", change.new.get("seq", -1)))
    project_id, conversation_id = _scope(str(change.keys.get("pk", "")))
    if seq == SUMMARY_SEQ:
        return _summary_events(change, project_id, conversation_id)
    if seq < SUMMARY_SEQ:
        return []  # hidden context
    message: MessageRecord = _record(change.new, MessageRecord)
    scope = Scope(project_id, conversation_id, message.org_id)
    if change.kind == "INSERT" and message.role == "user":
        content, truncated = bounded(message.content)
        sent = MessageSentData(
            conversation_id=conversation_id,
            message_id=message.id,
            seq=message.seq,
            user_id=message.user_id,
            session_id=message.session_id,
            content=content,
            content_truncated=truncated,
            attachments=message.attachments or [],
            tokens=message.tokens,
            created_at=message.created_at,
        )
        return [_envelope(change, MessageSent, message.created_at, scope, sequence=message.event_seq, data=sent)]
    was = str((change.old or {}).get("status", "pending" if change.kind == "INSERT" else ""))
    if message.role != "assistant" or was != "pending" or message.status == "pending":
        return []
    content, truncated = bounded(message.content)
    usage = message.usage or {}
    reply: dict[str, Any] = {
        "conversation_id": conversation_id,
        "message_id": message.id,
        "user_message_id": message.user_message_id,
        "seq": message.seq,
        "user_id": message.user_id,
        "session_id": message.session_id,
        "model": message.model,
        "provider_id": message.provider_id,
        "content": content,
        "content_truncated": truncated,
        "token_count": int(usage.get("total_tokens", 0) or 0),
        "usage": TokenUsage(**{k: int(usage.get(k, 0) or 0) for k in TokenUsage.model_fields}) if usage else None,
        "cost_usd": message.cost_usd,
        "tool_calls": len(message.tool_calls or []),
        "completed_at": message.completed_at,
        "author": ActorData(**message.author) if message.author else None,
    }
    at = message.completed_at or iso(change.approximate_at)
    if message.status == "completed":
        data = ResponseCompletedData(**reply)
        return [_envelope(change, ResponseCompleted, at, scope, sequence=message.event_seq, data=data)]
    error = message.error or {}
    failed = MessageFailedData(
        **reply,
        status=message.status,
        error=ErrorInfo(
            type=str(error.get("type", "api_error")), code=error.get("code"), message=str(error.get("message", ""))
        )
        if error
        else None,
    )
    return [_envelope(change, MessageFailed, at, scope, sequence=message.event_seq, data=failed)]


def _summary_events(change: Change, project_id: str, conversation_id: str) -> list[Envelope]:
    assert change.new is not None
    summary: SummaryRecord = _record(change.new, SummaryRecord)
    if change.old is not None and int(change.old.get("version", 0)) == summary.version:
        return []
    data = ContextSummarizedData(
        conversation_id=conversation_id,
        summary_id=summary.id,
        version=summary.version,
        covers_from=summary.covers_from,
        covers_to=summary.covers_to,
        message_count=summary.covers_to - summary.covers_from + 1,
        tokens=summary.tokens,
        model=summary.model,
    )
    return [
        _envelope(
            change,
            ContextSummarized,
            summary.created_at,
            Scope(project_id, conversation_id, summary.org_id),
            sequence=summary.event_seq,
            data=data,
        )
    ]


def approximate(seconds: float | int | None) -> datetime:
    """A stream record's ApproximateCreationDateTime (epoch seconds) as a datetime."""
    return datetime.fromtimestamp(float(seconds or 0), UTC)
