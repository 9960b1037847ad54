"""Handoffs (seed 001): a conversation handed to a human operator or to another agent.

    POST /v1/conversations/{id}/handoff          {to: human | agent:<ref>, reason, metadata}
    POST /v1/conversations/{id}/handoff/resolve  {resolution, metadata, resolved_by}
    GET  /v1/conversations/{id}/handoffs         the conversation's handoffs, oldest first
    GET  /v1/handoffs?status=pending|resolved    the project's queue, oldest first

To a human: the conversation's status becomes `handed_off` and its `handoff` field holds the
pending handoff, in one transaction with the handoff item (parley.storage.handoffs). While it is
handed off, a user's message is stored and answered 202 without a model call (`divert`), and an
operator's reply (`role: assistant`, `author: {type: human}`, permission
conversations:PostOperatorMessage) is stored as an ordinary assistant message; resolving returns
the conversation to `active`, and the next send's context window holds the whole exchange.

To an agent: the conversation's `agent_id` changes at once (a pinned `agent_version` is cleared:
it follows the new agent's latest), and the handoff is stored already resolved by `system`.

Every write is conditioned on the conversation's version and status; a failed condition or a
conflicting transaction reads again and decides (a 409, or another try: retry_stale); a try
whose response was lost but which committed is recognised by its handoff id (or resolve token).
The handoff events come from the handoff items' own stream records (parley.events.mapping).
Idempotency-Key: the two POSTs use the API's response store (parley.api.idempotency); the sends
store their key with the message, as every send does (parley.services.messages).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from parley.domain.agents import AgentRecord
from parley.domain.conversations import ConversationRecord, MessageRecord, MessageSend, SendKeyRecord, bounded_metadata
from parley.domain.errors import Conflict, InvalidRequest, NotFound
from parley.domain.handoffs import Handoff, HandoffCreate, HandoffRecord, HandoffResolve, HeldSend
from parley.domain.ids import new_id
from parley.domain.paging import Pages, Position
from parley.domain.principal import Principal
from parley.services import agents, documents
from parley.services import conversations as lifecycle
from parley.storage.conversations import (
    SEND_KEY_TTL,
    ConversationStore,
    StaleConversation,
    list_keys,
    message_from_item,
    retry_stale,
    send_key_sk,
)
from parley.storage.handoffs import HandoffStore

OPERATOR_PERMISSION = "conversations:PostOperatorMessage"
HISTORY_PAGES = Pages("handoffs", {"conversation_id": str, "after": str})
QUEUE_PAGES = Pages("handoff_queue", {"status": str, "after": str})


def store() -> HandoffStore:
    return HandoffStore()


def _token(*parts: str | int) -> str:
    """A transaction's ClientRequestToken (at most 36 characters)."""
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()[:36]


def _moved(principal: Principal, conversation: ConversationRecord, status: str, at: str) -> dict[str, Any]:
    """The conversation item's fields every handoff change sets (a status change moves its list keys)."""
    return {
        "status": status,
        "updated_at": at,
        "activity": f"{at}#{conversation.id}",
        **list_keys(principal.project_id, conversation.user_id, status),
    }


def _check_open(record: ConversationRecord) -> None:
    if record.status == "archived":
        raise Conflict(
            "The conversation is archived; unarchive it before handing it off.", code="conversation_archived"
        )
    if record.status == "handed_off":
        pending = (record.handoff or {}).get("id", "")
        raise Conflict(
            f"The conversation already has a pending handoff ({pending}); resolve it first.", code="handoff_pending"
        )


# --- request, resolve ---------------------------------------------------------------------------


def request(principal: Principal, conversation_id: str, body: HandoffCreate) -> Handoff:
    """Hand the conversation to a human (pending until resolved) or to an agent (resolved at once)."""
    agent: AgentRecord | None = None
    if body.to != "human":
        ref = body.to.removeprefix("agent:")
        lifecycle.load(principal, conversation_id)  # another project's conversation: 404 before anything else
        try:
            agent = agents.resolve(principal, ref)
        except NotFound:
            raise InvalidRequest(f"No agent {ref!r} in this project.", code="agent_not_found", param="to") from None
    conversations, handoffs = lifecycle.store(), store()
    handoff_id = new_id("hof")
    tries = [0]

    def attempt() -> HandoffRecord:
        tries[0] += 1
        record = lifecycle.load(principal, conversation_id, conversations)
        if tries[0] > 1:  # an earlier try may have committed with its answer lost
            landed = handoffs.get(principal.project_id, conversation_id, handoff_id)
            if landed is not None:
                return landed
        _check_open(record)
        at, version = lifecycle.now(), record.version
        handoff = HandoffRecord(
            id=handoff_id,
            conversation_id=conversation_id,
            project_id=principal.project_id,
            org_id=principal.org_id,
            user_id=record.user_id,
            status="pending",
            target="human",
            reason=body.reason,
            metadata=body.metadata or {},
            requested_at=at,
            requested_by=principal.key_id,
            event_seq=version + 1,
        )
        token = _token(principal.project_id, conversation_id, handoff_id, version)
        if agent is None:
            changes = {
                **_moved(principal, record, "handed_off", at),
                "handoff": handoff.pending(),
                "version": version + 1,
            }
            handoffs.write(record, handoff, changes=changes, status="active", token=token)
            return handoff
        # an agent takes over at once: requested (version + 1) and resolved (version + 2) by Parley
        handoff = handoff.model_copy(
            update={
                "status": "resolved",
                "target": "agent",
                "agent_id": agent.id,
                "agent_name": agent.name,
                "resolved_at": at,
                "resolution": f"Switched to agent {agent.name or agent.id}.",
                "resolved_by": {"type": "system"},
                "resolved_seq": version + 2,
            }
        )
        changes = {**_moved(principal, record, "active", at), "agent_id": agent.id, "version": version + 2}
        handoffs.write(record, handoff, changes=changes, removes=("agent_version",), status="active", token=token)
        return handoff

    stored: HandoffRecord = retry_stale(attempt)
    return stored.view()


def resolve(principal: Principal, conversation_id: str, body: HandoffResolve) -> Handoff:
    """Resolve the pending (human) handoff: the conversation is `active` again."""
    conversations, handoffs = lifecycle.store(), store()
    resolve_token = secrets.token_hex(12)
    tried: list[str] = []  # the pending handoff an earlier try resolved, if any

    def attempt() -> HandoffRecord:
        record = lifecycle.load(principal, conversation_id, conversations)
        if tried:  # an earlier try may have committed with its answer lost
            landed = handoffs.get(principal.project_id, conversation_id, tried[-1])
            if landed is not None and landed.resolve_token == resolve_token:
                return landed
        pending_id = (record.handoff or {}).get("id")
        if record.status != "handed_off" or not pending_id:
            raise Conflict("The conversation has no pending handoff.", code="no_pending_handoff")
        pending = handoffs.get(principal.project_id, conversation_id, str(pending_id))
        if pending is None or pending.status != "pending":
            raise StaleConversation  # written together with the conversation: read both again
        metadata = {**pending.metadata, **(body.metadata or {})}
        try:
            bounded_metadata(metadata)
        except ValueError as error:
            raise InvalidRequest(
                f"The handoff's metadata with the resolution's merged in: {error}", param="metadata"
            ) from None
        at, version = lifecycle.now(), record.version
        by = body.resolved_by
        resolved = pending.model_copy(
            update={
                "status": "resolved",
                "resolved_at": at,
                "resolution": body.resolution,
                "resolved_by": {"type": "human", **by.model_dump(exclude_none=True)}
                if by is not None
                else {"type": "api_key", "id": principal.key_id},
                "metadata": metadata,
                "resolved_seq": version + 1,
                "resolve_token": resolve_token,
            }
        )
        changes = {**_moved(principal, record, "active", at), "version": version + 1}
        tried.append(pending.id)
        handoffs.write(
            record,
            resolved,
            changes=changes,
            removes=("handoff",),
            status="handed_off",
            pending_id=pending.id,
            token=_token(principal.project_id, conversation_id, pending.id, resolve_token, version),
        )
        return resolved

    stored: HandoffRecord = retry_stale(attempt)
    return stored.view()


# --- lists --------------------------------------------------------------------------------------


def history(
    principal: Principal, conversation_id: str, limit: int, position: Position | None
) -> tuple[list[Handoff], Position | None]:
    """The conversation's handoffs, oldest first."""
    lifecycle.load(principal, conversation_id)
    if position is not None and position["conversation_id"] != conversation_id:
        raise InvalidRequest("This cursor belongs to another listing.", code="invalid_cursor", param="cursor")
    after = position["after"] if position else None
    records, last = store().history(principal.project_id, conversation_id, limit, after)
    return [r.view() for r in records], ({"conversation_id": conversation_id, "after": last} if last else None)


def queue(
    principal: Principal, status: str, limit: int, position: Position | None
) -> tuple[list[Handoff], Position | None]:
    """The project's handoffs in `status`, oldest first: the inbox of pending ones, or the resolved."""
    if position is not None and position["status"] != status:
        raise InvalidRequest("This cursor belongs to a list with other filters.", code="invalid_cursor", param="cursor")
    records, last = store().queue(principal.project_id, status, limit, position["after"] if position else None)
    return [r.view() for r in records], ({"status": status, "after": last} if last else None)


# --- sends while handed off -----------------------------------------------------------------------


@dataclass
class Diverted:
    """A send answered without a model call: a user's message while handed off to a human (202,
    HeldSend), or an operator's reply (200, the stored Message)."""

    status: int
    body: BaseModel
    replayed: bool = False


def divert(
    principal: Principal,
    record: ConversationRecord,
    body: MessageSend,
    key: str | None,
    fingerprint: str,
    conversations: ConversationStore,
) -> Diverted | ConversationRecord:
    """For parley.services.messages, before a send calls a model: store an operator's reply, or a
    user's message while the conversation is handed off, and answer it (Diverted); else the
    conversation record the ordinary send goes on with (read again when a handoff ended while
    this one tried to store)."""
    if body.role == "assistant":
        principal.require(OPERATOR_PERMISSION)
        _check_operator(body)
    elif body.author is not None:
        raise InvalidRequest("author goes with role assistant (an operator's reply).", param="author")
    elif record.status != "handed_off":
        return record
    else:
        _check_held(principal, record, body, conversations)
    reads = [record]

    def attempt() -> MessageRecord | ConversationRecord:
        current = reads.pop() if reads else lifecycle.load(principal, record.id, conversations)
        if body.role == "assistant" and current.status != "handed_off":
            if current.status == "archived":
                raise Conflict("The conversation is archived and accepts no messages.", code="conversation_archived")
            raise Conflict(
                "The conversation is not handed off to a human: operators reply only during a handoff.",
                code="not_handed_off",
            )
        if current.status != "handed_off":
            return current  # resolved meanwhile: an ordinary send after all
        seq, at = current.next_seq, lifecycle.now()
        message = MessageRecord(
            id=new_id("msg"),
            conversation_id=record.id,
            seq=seq,
            role=body.role,
            content=body.content,
            status="completed",
            session_id=body.session_id,
            attachments=body.attachments or None,
            author=body.author.model_dump(exclude_none=True) if body.author else None,
            created_at=at,
            completed_at=at if body.role == "assistant" else None,
            org_id=principal.org_id,
            event_seq=current.version + 1,
            user_id=current.user_id,
        )
        changes: dict[str, Any] = {
            "next_seq": seq + 1,
            "message_count": current.message_count + 1,
            "updated_at": at,
            "activity": f"{at}#{record.id}",
            "version": current.version + 1,
        }
        send_key = None
        if key is not None:  # the key's record points at the stored message (user_seq = reply_seq)
            send_key = SendKeyRecord(
                sk=send_key_sk(key),
                request_hash=fingerprint,
                user_seq=seq,
                reply_seq=seq,
                created_at=at,
                expiration=int(time.time() + SEND_KEY_TTL.total_seconds()),
            )
        token = _token(principal.project_id, record.id, key or "", message.id, seq)
        conversations.append_messages(
            current, [message], changes, send_key=send_key, token=token, statuses=("handed_off",)
        )
        return message

    stored: MessageRecord | ConversationRecord = retry_stale(attempt)
    if isinstance(stored, ConversationRecord):
        return stored
    return _answer(stored)


def replayed(item: MessageRecord) -> Diverted | MessageRecord:
    """An earlier send's stored answer (the item its Idempotency-Key points at), as it was first
    answered: a held user message or an operator's reply as Diverted, a model's reply as it is."""
    if item.role == "user" or (item.role == "assistant" and (item.author or {}).get("type") == "human"):
        answer = _answer(item)
        answer.replayed = True
        return answer
    return item


def _answer(item: MessageRecord) -> Diverted:
    message = message_from_item(item)
    if item.role == "user":
        return Diverted(202, HeldSend(message=message))
    return Diverted(200, message)


def _check_operator(body: MessageSend) -> None:
    if body.author is None or body.author.type != "human":
        raise InvalidRequest(
            "An operator's reply (role assistant) needs author {type: human, id, name}.",
            code="author_required",
            param="author" if body.author is None else "author.type",
        )
    if body.attachments:
        raise InvalidRequest("An operator's reply takes no attachments.", param="attachments")
    if body.session_id is not None:
        raise InvalidRequest("An operator's reply takes no session_id (no model answers it).", param="session_id")


def _check_held(
    principal: Principal, record: ConversationRecord, body: MessageSend, conversations: ConversationStore
) -> None:
    """What an ordinary send checks of a message, before it is stored unanswered."""
    session_id = body.session_id
    if session_id is not None and conversations.get_session(principal.project_id, record.id, session_id) is None:
        raise InvalidRequest(
            f"No session {body.session_id!r} in this conversation.", code="session_not_found", param="session_id"
        )
    for i, document_id in enumerate(body.attachments):
        documents.text_of(principal, document_id, f"attachments[{i}]")
