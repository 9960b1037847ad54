"""Sending messages in a conversation, and reading its history.

A send: checks everything that can be refused; chooses the context window with bounded reads
(parley.services.context); reserves the user message and its reply placeholder in one
transaction (parley.storage.conversations); calls the model (retries and fallback before the
first token); then completes the reply, or marks it `error` (nothing produced) or `incomplete`
(partial text kept). Whatever happens after the reservation, both messages stay: never a lost
message, never a gap.

An `Idempotency-Key` is a property of the send, not of the HTTP response: the key's record is
written in the same transaction as the pair (parley.storage.conversations.append_pair), so a
retry after any failure (a 5xx, a dropped stream, a lost response) finds the pair and answers
from it: the completed reply, the stored error, or 409 `idempotency_request_in_progress` with
Retry-After while the reply is still being written. The same key with another body is 409
`idempotency_key_reused`. Nothing is stored twice and the model is called once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from parley.domain.chat import ToolCall, Usage
from parley.domain.conversations import (
    ConversationRecord,
    HiddenContextItem,
    Message,
    MessageRecord,
    MessageSend,
    SendKeyRecord,
    SessionRecord,
)
from parley.domain.errors import Conflict, InvalidRequest, NotFound, ParleyError, stored_error
from parley.domain.ids import new_id
from parley.domain.keys import Quota
from parley.domain.paging import Pages, Position
from parley.domain.principal import Principal
from parley.domain.replies import ReplyDone, ReplyEvent, ReplyFailed, ReplyStarted, TextDelta, ToolCallDone
from parley.providers.base import ModelRequest, StreamEvent
from parley.providers.resilient import Outcome, Resilient, RetryPolicy
from parley.providers.tokenizer import count_message
from parley.services import context, documents, handoffs, limits, registry
from parley.services import conversations as lifecycle
from parley.services.metering import CallRecord, call_cost, record_call
from parley.services.replies import Ending, relay
from parley.storage.conversations import (
    SEND_KEY_TTL,
    ConversationStore,
    DuplicateSend,
    is_stale_pending,
    message_from_item,
    retry_stale,
    send_key_sk,
)

log = logging.getLogger(__name__)
ROUTE = "POST /v1/conversations/{conversation_id}/messages"
HISTORY_PAGES = Pages("messages", {"conversation_id": str, "order": str, "seq": int})
# A reply is stored up to this many UTF-8 bytes (DynamoDB items stop at 400 KB); a longer one is
# kept truncated, marked `incomplete` with code `reply_too_large`.
MAX_REPLY_BYTES = 300_000
RETRY_AFTER_SECONDS = 2


@dataclass
class Sent:
    """A send's reply, and whether it was answered from an earlier request with the same key."""

    message: Message
    replayed: bool = False
    quota: Quota | None = None  # where the send left its rate limits (None: no limits, or a replay)


@dataclass
class Streamed:
    events: Iterator[ReplyEvent]
    replayed: bool = False
    quota: Quota | None = None


@dataclass
class Prepared:
    conversation: ConversationRecord
    user: MessageRecord
    reply: MessageRecord
    runner: Resilient
    request: ModelRequest
    request_id: str
    quota: Quota | None = None
    started: float = field(default_factory=time.monotonic)


def _check_sendable(record: ConversationRecord) -> None:
    if record.status == "archived":
        raise Conflict(
            "The conversation is archived and accepts no messages; unarchive it first.", code="conversation_archived"
        )
    if record.status == "handed_off":
        raise Conflict("The conversation is handed off; resolve the handoff first.", code="conversation_handed_off")


def _targets(principal: Principal, record: ConversationRecord, session: SessionRecord | None) -> Resilient:
    model = (session.model if session else None) or record.model
    provider_id = (session.provider_id if session else None) or record.provider_id
    # a conversation with no model in a project with no provider gets the built-in model
    return Resilient(registry.resolve(principal, model, provider_id, echo_when_unconfigured=True), RetryPolicy())


def model_for(principal: Principal, conversation_id: str) -> tuple[str, Resilient]:
    """The model (and its call chain) that answers this conversation's next message."""
    record = lifecycle.load(principal, conversation_id)
    runner = _targets(principal, record, None)
    return runner.targets[0].model, runner


def _prepare(
    principal: Principal,
    conversation_id: str,
    body: MessageSend,
    request_id: str,
    key: str | None,
    conversations: ConversationStore,
) -> Prepared | handoffs.Diverted:
    record = lifecycle.load(principal, conversation_id, conversations)
    # an operator's reply, or a message while handed off to a human: stored, answered, no model call
    diverted = handoffs.divert(principal, record, body, key, _fingerprint(conversation_id, body), conversations)
    if isinstance(diverted, handoffs.Diverted):
        return diverted
    record = diverted
    _check_sendable(record)
    session = None
    if body.session_id is not None:
        session = conversations.get_session(principal.project_id, conversation_id, body.session_id)
        if session is None:
            raise InvalidRequest(
                f"No session {body.session_id!r} in this conversation.", code="session_not_found", param="session_id"
            )
    attached = [documents.text_of(principal, doc, f"attachments[{i}]") for i, doc in enumerate(body.attachments)]
    runner = _targets(principal, record, session)
    model = runner.targets[0].model
    # The window is chosen before anything is stored: a message too large for it is refused cleanly.
    # Attachments add their documents' text to this message's model context; the stored message keeps the ids.
    model_content = body.content + "".join(f"\n\n[Attachment: {name}]\n{text}" for name, text in attached)
    built = context.build(principal, record, model, runner, model_content, request_id=request_id, store=conversations)
    # admitted (budgets, rate limits) before anything is stored: a refused send stores nothing
    quota = limits.admit(principal, built.window.tokens, record.user_id)
    # the first attempt uses the record already read (at the version a summary stored on the way
    # moved it to); a retry reads again
    reads = [record.model_copy(update={"version": built.version})]

    def reserve() -> tuple[ConversationRecord, MessageRecord, MessageRecord]:
        current = reads.pop() if reads else lifecycle.load(principal, conversation_id, conversations)
        _check_sendable(current)
        seq, at = current.next_seq, lifecycle.now()
        user = MessageRecord(
            id=new_id("msg"),
            conversation_id=conversation_id,
            seq=seq,
            role="user",
            content=body.content,
            status="completed",
            session_id=body.session_id,
            attachments=body.attachments or None,
            tokens=built.new_tokens,
            created_at=at,
            org_id=principal.org_id,
            event_seq=current.version + 1,  # the send moves the version by 2: one per message's event
            user_id=current.user_id,
        )
        reply = MessageRecord(
            id=new_id("msg"),
            conversation_id=conversation_id,
            seq=seq + 1,
            role="assistant",
            content="",
            status="pending",
            session_id=body.session_id,
            user_message_id=user.id,
            model=model,
            context=built.record(),
            created_at=at,
            org_id=principal.org_id,
            event_seq=current.version + 2,
            user_id=current.user_id,
        )
        changes: dict[str, Any] = {
            "next_seq": seq + 2,
            "message_count": current.message_count + 2,
            "updated_at": at,
            "activity": f"{at}#{conversation_id}",
            "version": current.version + 2,
        }
        send_key = None
        # the token names this attempt (key, seq, message id): a request whose outcome is unknown is
        # resent with it and answered from the commit; another attempt is another transaction
        token = _token(principal.project_id, conversation_id, f"{key or ''}\n{user.id}", seq)
        if key is not None:
            send_key = SendKeyRecord(
                sk=send_key_sk(key),
                request_hash=_fingerprint(conversation_id, body),
                user_seq=seq,
                reply_seq=seq + 1,
                created_at=at,
                expiration=int(time.time() + SEND_KEY_TTL.total_seconds()),
            )
        conversations.append_pair(current, user, reply, changes, send_key, token)
        return current.model_copy(update=changes), user, reply

    current, user, reply = retry_stale(reserve)
    request = ModelRequest(model=model, messages=built.messages)
    return Prepared(current, user, reply, runner, request, request_id, quota)


def _finish(
    principal: Principal,
    prepared: Prepared,
    *,
    status: Literal["completed", "error", "incomplete"],
    content: str,
    usage: Usage | None,
    outcome: Outcome | None,
    tool_calls: list[ToolCall] | None = None,
    error: ParleyError | None = None,
) -> Message:
    """Write the reply back (conditionally: a conversation deleted meanwhile gets nothing back),
    then meter the call (a call that happened is counted even if its conversation is gone)."""
    conversation_id = prepared.conversation.id
    model = outcome.target.model if outcome else prepared.request.model
    content, truncated = _bounded(content)
    if truncated and status == "completed":
        status = "incomplete"
        error = error or InvalidRequest(
            f"The reply was longer than {MAX_REPLY_BYTES:,} bytes; it is stored truncated.", code="reply_too_large"
        )
    call = CallRecord(
        route=ROUTE,
        request_id=prepared.request_id,
        model=model,
        status=error.status if error else 200,
        outcome="succeeded" if status == "completed" else ("failed" if status == "error" else "incomplete"),
        latency_ms=int((time.monotonic() - prepared.started) * 1000),
        usage=usage,
        provider_id=outcome.target.provider_id if outcome else None,
        error_code=error.code if error else None,
        resource_ids=[conversation_id, prepared.user.id, prepared.reply.id],
        tries=outcome.tries if outcome else 1,
        user=prepared.conversation.user_id,
    )
    cost = call_cost(call)
    fields: dict[str, Any] = {
        "content": content,
        "status": status,
        "model": model,
        "provider_id": outcome.target.provider_id if outcome else None,
        "usage": usage.model_dump(exclude_none=True) if usage else None,
        "cost_usd": str(cost) if cost is not None else None,
        "tool_calls": [t.model_dump() for t in tool_calls] if tool_calls else None,
        "error": {"type": error.type, "code": error.code, "message": error.message} if error else None,
        # the status the send answered with, so a retry with the same key answers it again
        "error_status": error.status if error else None,
        "tokens": count_message(model, content) if content else 0,
        "completed_at": lifecycle.now(),
    }
    stored = lifecycle.store().finish_message(principal.project_id, conversation_id, prepared.reply.seq, fields)
    record_call(principal, call)
    if not stored:
        log.info("reply not stored: its conversation is gone", extra={"conversation_id": conversation_id})
    return message_from_item(prepared.reply.model_copy(update=fields))


def _bounded(content: str) -> tuple[str, bool]:
    encoded = content.encode("utf-8", "replace")
    if len(encoded) <= MAX_REPLY_BYTES:
        return content, False
    return encoded[:MAX_REPLY_BYTES].decode("utf-8", "ignore"), True


def _fingerprint(conversation_id: str, body: MessageSend) -> str:
    """What must match for a retry to be the same send (`stream` may differ: a retry of a broken
    stream can ask for the buffered reply)."""
    shown: dict[str, Any] = {
        "conversation_id": conversation_id,
        "content": body.content,
        "attachments": body.attachments,
        "session_id": body.session_id,
    }
    if body.role != "user":  # an operator's reply (parley.services.handoffs)
        shown |= {"role": body.role, "author": body.author.model_dump() if body.author else None}
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode("utf-8", "replace")).hexdigest()


def _token(project_id: str, conversation_id: str, key: str, seq: int) -> str:
    """The transaction's ClientRequestToken (at most 36 characters)."""
    return hashlib.sha256(f"{project_id}\n{conversation_id}\n{key}\n{seq}".encode()).hexdigest()[:36]


def _earlier(
    principal: Principal, conversation_id: str, body: MessageSend, key: str, conversations: ConversationStore
) -> MessageRecord | None:
    """The reply item of an earlier send with this key, or None if there was none. 409 when the
    key was used for another request, or when that reply is still being written; the stored
    error when that send failed."""
    record = conversations.get_send_key(principal.project_id, conversation_id, key)
    if record is None:
        return None
    if record.request_hash != _fingerprint(conversation_id, body):
        raise Conflict("This Idempotency-Key was used with a different request.", code="idempotency_key_reused")
    reply = conversations.get_message(principal.project_id, conversation_id, record.reply_seq)
    if reply is None:
        raise NotFound(f"No conversation {conversation_id!r}.", code="conversation_not_found")
    if is_stale_pending(reply):
        settled = [reply]
        lifecycle.settle(principal, conversation_id, settled, conversations)
        reply = settled[0]
    if reply.status == "pending":
        raise _in_progress()
    if reply.status == "error":  # the send failed: its retry answers the same error
        raise _replayed_error(reply.error, reply.error_status)
    return reply


def _in_progress() -> Conflict:
    return Conflict(
        "A request with this Idempotency-Key is still running; retry shortly.",
        code="idempotency_request_in_progress",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _begin(
    principal: Principal, conversation_id: str, body: MessageSend, request_id: str, key: str | None
) -> Prepared | MessageRecord | handoffs.Diverted:
    """A new send (reserved), or the reply item of the earlier send with this key (a send that
    called no model: as handoffs.Diverted)."""
    conversations = lifecycle.store()
    if key is not None:
        earlier = _earlier(principal, conversation_id, body, key, conversations)
        if earlier is not None:
            return handoffs.replayed(earlier)
    try:
        return _prepare(principal, conversation_id, body, request_id, key, conversations)
    except DuplicateSend:  # a concurrent request with the same key stored its pair first
        assert key is not None
        earlier = _earlier(principal, conversation_id, body, key, conversations)
        if earlier is None:  # its record expired in between: a new send would be a second pair
            raise _in_progress() from None
        return handoffs.replayed(earlier)


def _replayed_error(error: dict[str, Any] | None, status: int | None) -> ParleyError:
    error = error or {}
    return stored_error(
        status or 502,
        str(error.get("type", "api_error")),
        str(error.get("code", "internal_error")),
        str(error.get("message", "")),
    )


def send(
    principal: Principal, conversation_id: str, body: MessageSend, request_id: str = "", key: str | None = None
) -> Sent | handoffs.Diverted:
    begun = _begin(principal, conversation_id, body, request_id, key)
    if isinstance(begun, handoffs.Diverted):
        return begun
    if not isinstance(begun, Prepared):
        return Sent(message_from_item(begun), replayed=True)
    prepared = begun
    try:
        reply, outcome = prepared.runner.complete(prepared.request)
    except ParleyError as error:
        _finish(principal, prepared, status="error", content="", usage=None, outcome=None, error=error)
        raise
    return Sent(
        _finish(
            principal,
            prepared,
            status="completed",
            content=reply.content or "",
            usage=reply.usage,
            outcome=outcome,
            tool_calls=list(reply.tool_calls) or None,
        ),
        quota=prepared.quota,
    )


def send_stream(
    principal: Principal, conversation_id: str, body: MessageSend, request_id: str = "", key: str | None = None
) -> Streamed | handoffs.Diverted:
    """The reply's events as the model produces them (encoded as the conversation stream:
    `start`, `text`..., `tool_call`..., then `done` or `error`).

    Refusals and a provider that fails before its first event are ordinary JSON errors (the
    reply is stored with status `error`); a failure later ends the stream with an `error` event
    and the reply keeps its partial text with status `incomplete`. A retry with the same key
    streams the stored reply the same way (one `text` event with its whole text). A send that
    calls no model (parley.services.handoffs) is answered as JSON, not streamed.
    """
    begun = _begin(principal, conversation_id, body, request_id, key)
    if isinstance(begun, handoffs.Diverted):
        return begun
    if not isinstance(begun, Prepared):
        return Streamed(_replay_stream(begun), replayed=True)
    prepared = begun
    try:
        events, outcome = prepared.runner.stream(prepared.request)
    except ParleyError as error:
        _finish(principal, prepared, status="error", content="", usage=None, outcome=None, error=error)
        raise
    return Streamed(_stream(principal, prepared, events, outcome), quota=prepared.quota)


def _started(reply: MessageRecord, conversation_id: str) -> ReplyStarted:
    created = datetime.fromisoformat(reply.created_at.replace("Z", "+00:00"))
    return ReplyStarted(
        reply_id=reply.id,
        model=reply.model or "",
        created=int(created.timestamp()),
        conversation_id=conversation_id,
        user_message_id=reply.user_message_id or "",
    )


def _replay_stream(reply: MessageRecord) -> Iterator[ReplyEvent]:
    """The stored reply as a reply stream: start, its whole text, its tool calls, then done (or
    the error it ended with)."""
    message = message_from_item(reply)
    yield _started(reply, message.conversation_id)
    if message.content:
        yield TextDelta(text=message.content)
    for call in message.tool_calls or []:
        yield ToolCallDone(call=call)
    if message.status == "completed":
        yield ReplyDone(reply_id=message.id, usage=message.usage, cost=message.cost)
    else:
        yield ReplyFailed.of(_replayed_error(reply.error, reply.error_status))


def _stream(
    principal: Principal, prepared: Prepared, events: Iterator[StreamEvent], outcome: Outcome
) -> Iterator[ReplyEvent]:
    def end(ending: Ending) -> list[ReplyEvent]:
        if ending.status == "incomplete":  # the model failed mid-way, or the client went away
            _finish(
                principal,
                prepared,
                status="incomplete",
                content=ending.text,
                usage=ending.usage,
                outcome=outcome,
                error=ending.error,
            )
            return [ReplyFailed.of(ending.error)] if ending.error else []
        message = _finish(
            principal,
            prepared,
            status="completed",
            content=ending.text,
            usage=ending.usage,
            outcome=outcome,
            tool_calls=ending.tool_calls or None,
        )
        done: list[ReplyEvent] = [ToolCallDone(call=call) for call in ending.tool_calls]
        if message.status == "completed":
            done.append(ReplyDone(reply_id=message.id, usage=message.usage, cost=message.cost))
        else:  # stored truncated: over MAX_REPLY_BYTES
            done.append(ReplyFailed.of(_replayed_error(message.error, 400)))
        return done

    return relay(events, end, first=_started(prepared.reply, prepared.conversation.id))


def hidden_context(principal: Principal, conversation_id: str) -> list[HiddenContextItem]:
    """The injected hidden context, in injection order (only for keys allowed to read it)."""
    principal.require("conversations:ReadHiddenContext")
    hidden, _ = lifecycle.store().pinned(principal.project_id, conversation_id)
    return [HiddenContextItem.of(h) for h in hidden]


def history(
    principal: Principal,
    conversation_id: str,
    *,
    limit: int,
    order: Literal["asc", "desc"],
    position: Position | None,
    offset: int | None,
) -> tuple[list[Message], Position | None]:
    """A page of history: one read of the conversation, one range query. O(page), never O(history)."""
    if position is not None and offset is not None:
        raise InvalidRequest("Give cursor or offset, not both.", param="offset")
    conversations = lifecycle.store()
    record = lifecycle.load(principal, conversation_id, conversations)
    last_seq = record.next_seq - 1
    if position is not None:
        if position["conversation_id"] != conversation_id or position["order"] != order:
            raise InvalidRequest("This cursor belongs to another listing.", code="invalid_cursor", param="cursor")
        after = int(position["seq"])
        low, high = (after + 1, min(after + limit, last_seq)) if order == "asc" else (max(1, after - limit), after - 1)
    else:
        skip = offset or 0
        if order == "asc":
            low, high = skip + 1, min(skip + limit, last_seq)
        else:
            high = last_seq - skip
            low = max(1, high - limit + 1)
    items = conversations.message_range(principal.project_id, conversation_id, low, high, descending=order == "desc")
    lifecycle.settle(principal, conversation_id, items, conversations)
    more = high < last_seq if order == "asc" else low > 1
    after_page = {"conversation_id": conversation_id, "order": order, "seq": items[-1].seq} if more and items else None
    return [message_from_item(i) for i in items], after_page
