"""Conversation lifecycle: create, read, list, update, archive, unarchive, delete, and chat sessions.

Events are not raised here: they derive from the committed writes (the tables' streams feed
parley.events.emitter), so a write that fails yields none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from parley.domain.clock import iso
from parley.domain.conversations import (
    ChatSession,
    Conversation,
    ConversationCreate,
    ConversationRecord,
    ConversationUpdate,
    MessageRecord,
    SessionCreate,
    SessionRecord,
)
from parley.domain.errors import Conflict, InvalidRequest, NotFound
from parley.domain.ids import has_prefix, new_id
from parley.domain.paging import Pages, Position
from parley.domain.principal import Principal
from parley.services import providers as provider_store
from parley.storage.conversations import (
    STATUSES,
    ConversationStore,
    is_stale_pending,
    list_keys,
    message_from_item,
    retry_stale,
)

log = logging.getLogger(__name__)
StatusFilter = Literal["active", "archived", "handed_off", "all"]


def now() -> str:
    return iso()


def store() -> ConversationStore:
    return ConversationStore()


def check_org(principal: Principal, org_id: str | None) -> None:
    """Seed 002 sends org_id with every call: accepted, and it must be the key's own org."""
    if org_id is not None and org_id != principal.org_id:
        raise InvalidRequest("org_id does not match this API key's organization.", code="org_mismatch", param="org_id")


def view(record: ConversationRecord, sessions: list[SessionRecord] | None = None) -> Conversation:
    stored = record.model_dump()
    fields = {k: v for k, v in stored.items() if k in Conversation.model_fields and k not in ("sessions", "messages")}
    return Conversation(
        **fields,
        is_archived=record.status == "archived",
        sessions=[session_view(s) for s in sessions] if sessions is not None else None,
    )


def session_view(session: SessionRecord) -> ChatSession:
    return ChatSession(**{k: v for k, v in session.model_dump().items() if k in ChatSession.model_fields})


def _check_provider(principal: Principal, provider_id: str | None, param: str = "provider_id") -> None:
    if provider_id is None:
        return
    try:
        provider_store.get(principal, provider_id)
    except NotFound:
        raise InvalidRequest(
            f"No AI provider {provider_id!r} in this project.", code="provider_not_found", param=param
        ) from None


def load(
    principal: Principal, conversation_id: str, conversations: ConversationStore | None = None
) -> ConversationRecord:
    record = (
        (conversations or store()).get(principal.project_id, conversation_id)
        if has_prefix(conversation_id, "conv")
        else None
    )
    if record is None:
        raise NotFound(f"No conversation {conversation_id!r}.", code="conversation_not_found")
    return record


def create(principal: Principal, body: ConversationCreate) -> Conversation:
    _check_provider(principal, body.provider_id)
    conversation_id, at = new_id("conv"), now()
    status = "archived" if body.is_archived else "active"
    record = ConversationRecord(
        id=conversation_id,
        project_id=principal.project_id,
        org_id=principal.org_id,
        title=body.title,
        user_id=body.user_id,
        status=status,
        provider_id=body.provider_id,
        model=body.model,
        system_prompt=body.system_prompt,
        metadata=body.metadata or {},
        context=body.context.model_dump(exclude_none=True) if body.context else {},
        message_count=0,
        next_seq=1,
        created_at=at,
        updated_at=at,
        activity=f"{at}#{conversation_id}",
        version=1,
        **list_keys(principal.project_id, body.user_id, status),
    )
    store().put_new(record)
    return view(record)


INLINE_MESSAGES = 100


def get(
    principal: Principal, conversation_id: str, *, include_sessions: bool = False, include_messages: bool = False
) -> Conversation:
    """The conversation; with its sessions, and with its newest messages (seed 000's getConversation)."""
    conversations = store()
    record = load(principal, conversation_id, conversations)
    sessions = None
    if include_sessions:
        sessions, _ = conversations.sessions(principal.project_id, conversation_id, 100, None)
    conversation = view(record, sessions)
    if include_messages:
        last = record.next_seq - 1
        low = max(1, last - INLINE_MESSAGES + 1)
        items = conversations.message_range(principal.project_id, conversation_id, low, last, descending=False)
        settle(principal, conversation_id, items, conversations)
        conversation.messages = [message_from_item(i) for i in items]
        conversation.messages_has_more = low > 1
    return conversation


PAGES = Pages("conversations", {"before": str, "user_id": (str, type(None)), "status": str})
SESSION_PAGES = Pages("sessions", {"after": str})


def list_conversations(
    principal: Principal,
    *,
    user_id: str | None,
    status: StatusFilter,
    limit: int,
    position: Position | None,
) -> tuple[list[Conversation], Position | None]:
    if position and (position["user_id"], position["status"]) != (user_id, status):
        raise InvalidRequest("This cursor belongs to a list with other filters.", code="invalid_cursor", param="cursor")
    statuses = STATUSES if status == "all" else (status,)
    before = position["before"] if position else None
    records, last = store().page(principal.project_id, user_id, statuses, limit, before)
    return [view(r) for r in records], ({"before": last, "user_id": user_id, "status": status} if last else None)


def _modify(
    principal: Principal,
    conversation_id: str,
    change: Callable[[ConversationRecord], ConversationRecord | None],
) -> ConversationRecord:
    """Read, change, write with the version as condition; again if someone wrote in between."""
    conversations = store()

    def attempt() -> ConversationRecord:
        record = load(principal, conversation_id, conversations)
        updated = change(record.model_copy(deep=True))
        if updated is None:  # nothing to do (e.g. archiving an archived conversation)
            return record
        at = now()
        keys = list_keys(principal.project_id, updated.user_id, updated.status)
        fields = updated.model_dump()
        fields.pop("list_owner", None)
        updated = ConversationRecord(
            **{**fields, "updated_at": at, "activity": f"{at}#{conversation_id}", "version": record.version + 1, **keys}
        )
        conversations.replace(updated, record.version)
        return updated

    result: ConversationRecord = retry_stale(attempt)
    return result


def update(principal: Principal, conversation_id: str, body: ConversationUpdate) -> Conversation:
    fields = body.model_fields_set
    if "provider_id" in fields:
        _check_provider(principal, body.provider_id)

    def change(record: ConversationRecord) -> ConversationRecord:
        for name in ("title", "provider_id", "model", "system_prompt"):
            if name in fields:
                setattr(record, name, getattr(body, name))
        if "metadata" in fields:
            record.metadata = body.metadata or {}
        if "context" in fields:
            record.context = body.context.model_dump(exclude_none=True) if body.context else {}
        return record

    return view(_modify(principal, conversation_id, change))


def archive(principal: Principal, conversation_id: str) -> Conversation:
    def change(record: ConversationRecord) -> ConversationRecord | None:
        if record.status == "archived":
            return None
        if record.status == "handed_off":  # an operator is on it: archiving would strand the handoff
            raise Conflict(
                "The conversation is handed off to a human; resolve the handoff before archiving it.",
                code="handoff_pending",
            )
        record.status = "archived"
        return record

    return view(_modify(principal, conversation_id, change))


def unarchive(principal: Principal, conversation_id: str) -> Conversation:
    def change(record: ConversationRecord) -> ConversationRecord | None:
        if record.status != "archived":
            return None
        record.status = "active"
        return record

    return view(_modify(principal, conversation_id, change))


def delete(principal: Principal, conversation_id: str) -> None:
    load(principal, conversation_id)  # another project's id is not found
    if not store().delete_all(principal.project_id, conversation_id):
        raise NotFound(f"No conversation {conversation_id!r}.", code="conversation_not_found")


def create_session(principal: Principal, conversation_id: str, body: SessionCreate) -> ChatSession:
    if body.model is not None and body.model_id is not None and body.model != body.model_id:
        raise InvalidRequest("Give model or model_id, not two different values.", param="model_id")
    model = body.model or body.model_id
    record = load(principal, conversation_id)
    if record.status == "archived":
        raise Conflict("The conversation is archived; unarchive it first.", code="conversation_archived")
    _check_provider(principal, body.provider_id)
    model = model or record.model
    if model is None and body.provider_id is None:
        raise InvalidRequest("A session needs a model (or a provider_id with a default_model).", param="model")
    if model is None:
        loaded = provider_store.get(principal, str(body.provider_id))
        if loaded.default_model is None:
            raise InvalidRequest("The provider has no default_model; name a model.", param="model")
        model = loaded.default_model
    at = now()
    session = SessionRecord(
        id=new_id("ses"),
        conversation_id=conversation_id,
        provider_id=body.provider_id,
        model=model,
        status="active",
        created_at=at,
        updated_at=at,
    )
    store().put_session(principal.project_id, conversation_id, session)
    return session_view(session)


def list_sessions(
    principal: Principal, conversation_id: str, limit: int, position: Position | None
) -> tuple[list[ChatSession], Position | None]:
    load(principal, conversation_id)
    after = position["after"] if position else None
    records, last = store().sessions(principal.project_id, conversation_id, limit, after)
    return [session_view(r) for r in records], ({"after": last} if last else None)


def settle(
    principal: Principal, conversation_id: str, items: list[MessageRecord], conversations: ConversationStore
) -> None:
    """Write back, in place, replies a dead invocation left `pending` (older than any invocation
    can run) as `incomplete`/interrupted, so history, counts and events agree. Conditional: a
    reply finished or deleted meanwhile is left as it is."""
    for i, item in enumerate(items):
        if is_stale_pending(item) and conversations.interrupt_stale(
            principal.project_id, conversation_id, item.seq, item.created_at
        ):
            fresh = conversations.get_message(principal.project_id, conversation_id, item.seq)
            if fresh is not None:
                items[i] = fresh
