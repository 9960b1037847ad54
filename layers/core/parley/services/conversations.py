"""Conversation lifecycle: create, read, list, update, archive, unarchive, delete, and chat sessions.

Events are not raised here: they derive from the committed writes (the tables' streams feed
parley.events.emitter), so a write that fails yields none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

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

if TYPE_CHECKING:
    from parley.domain.agents import AgentRecord

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


def _check_index(principal: Principal, index_id: str | None) -> None:
    if index_id is not None:
        from parley.services import indexes  # noqa: PLC0415 - only conversations with an index read it

        indexes.get_for(principal, index_id, param="index_id")


def is_conversation_id(value: str) -> bool:
    """A conversation's id, or a thread's (a thread is a conversation with a parent)."""
    return has_prefix(value, "conv") or has_prefix(value, "thr")


def _not_found(conversation_id: str) -> NotFound:
    return NotFound(f"No conversation {conversation_id!r}.", code="conversation_not_found")


def load_with_parent(
    principal: Principal,
    conversation_id: str,
    conversations: ConversationStore | None = None,
    *,
    with_pinned: bool = False,
) -> tuple[ConversationRecord, ConversationRecord | None]:
    """The conversation (a `conv_` or a `thr_` id) and, for a thread, its parent. 404 when there
    is none in the caller's project, when it is being deleted, and for a thread whose parent is
    gone or being deleted (a thread lives only as long as its parent). `with_pinned` (a send):
    the conversation's pinned items come in the same read (`ConversationStore.get`)."""
    conversations = conversations or store()
    record = (
        conversations.get(principal.project_id, conversation_id, with_pinned=with_pinned)
        if is_conversation_id(conversation_id)
        else None
    )
    if record is None or record.deleting_at is not None:
        raise _not_found(conversation_id)
    if record.parent_id is None:
        return record, None
    parent = conversations.get(principal.project_id, record.parent_id)
    if parent is None or parent.deleting_at is not None:
        raise _not_found(conversation_id)
    return record, parent


def load(
    principal: Principal, conversation_id: str, conversations: ConversationStore | None = None
) -> ConversationRecord:
    return load_with_parent(principal, conversation_id, conversations)[0]


def load_for_call(
    principal: Principal,
    conversation_id: str,
    conversations: ConversationStore | None = None,
    *,
    with_pinned: bool = False,
) -> ConversationRecord:
    """The conversation with the settings a model call uses: a thread's own where it set them,
    else its parent's as they are now (a thread shares its parent's provider and model, system
    prompt, context settings and agent). Never written back: a thread keeps following its parent."""
    record, parent = load_with_parent(principal, conversation_id, conversations, with_pinned=with_pinned)
    return record if parent is None else inherit(record, parent)


def inherit(thread: ConversationRecord, parent: ConversationRecord) -> ConversationRecord:
    own_model = thread.provider_id is not None or thread.model is not None  # a pair: never one of each
    own_agent = thread.agent_id is not None
    return thread.model_copy(
        update={
            "provider_id": thread.provider_id if own_model else parent.provider_id,
            "model": thread.model if own_model else parent.model,
            "system_prompt": thread.system_prompt if thread.system_prompt is not None else parent.system_prompt,
            "context": thread.context or parent.context,
            "agent_id": thread.agent_id if own_agent else parent.agent_id,
            "agent_version": thread.agent_version if own_agent else parent.agent_version,
        }
    )


def agent_of(principal: Principal, record: ConversationRecord) -> AgentRecord | None:
    """The agent that answers the conversation's next message: its pinned version, else the
    latest (None: the conversation has no agent). 409 `agent_not_found` when it was deleted."""
    if record.agent_id is None:
        return None
    from parley.services import agents  # noqa: PLC0415 - only conversations with an agent read it

    try:
        if record.agent_version is not None:
            return agents.version_of(principal, record.agent_id, record.agent_version)
        return agents.resolve(principal, record.agent_id)
    except NotFound:
        raise Conflict(
            f"The conversation's agent {record.agent_id!r} no longer exists; set another one.",
            code="agent_not_found",
        ) from None


def effective(record: ConversationRecord, agent: AgentRecord | None) -> ConversationRecord:
    """The conversation's settings for a model call: its own, and its agent's where it has none
    (provider, model, system prompt, context settings)."""
    if agent is None:
        return record
    return record.model_copy(
        update={
            "provider_id": record.provider_id or agent.provider_id,
            "model": record.model or agent.model,
            "system_prompt": record.system_prompt if record.system_prompt is not None else agent.system_prompt,
            "context": record.context or (agent.context.model_dump(exclude_none=True) if agent.context else {}),
            "index_id": record.index_id or agent.knowledge_index_id,
        }
    )


def _agent_ref(principal: Principal, ref: str | None, version: int | None) -> tuple[str | None, int | None]:
    """The agent a conversation names, checked now (404 `agent_not_found`), with its pinned version."""
    if ref is None:
        if version is not None:
            raise InvalidRequest("agent_version pins a version of an agent: name the agent.", param="agent_version")
        return None, None
    from parley.services import agents  # noqa: PLC0415 - only conversations with an agent read it

    agent = agents.resolve(principal, ref)
    if version is not None:
        agents.version_of(principal, agent.id, version)
    return agent.id, version


def create(principal: Principal, body: ConversationCreate) -> Conversation:
    _check_provider(principal, body.provider_id)
    agent_id, agent_version = _agent_ref(principal, body.agent, body.agent_version)
    _check_index(principal, body.index_id)
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
        agent_id=agent_id,
        agent_version=agent_version,
        use_rag=body.use_rag,
        index_id=body.index_id,
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
# ?include_threads=true lists threads too: its cursors are another list's
WITH_THREADS_PAGES = Pages("conversations_and_threads", PAGES.shape)
SESSION_PAGES = Pages("sessions", {"after": str})


def list_conversations(
    principal: Principal,
    *,
    user_id: str | None,
    status: StatusFilter,
    limit: int,
    position: Position | None,
    include_threads: bool = False,
) -> tuple[list[Conversation], Position | None]:
    """Threads are left out unless `include_threads` (they are listed by their parent's
    GET .../threads); with it they come in the same order, by their own activity."""
    if position and (position["user_id"], position["status"]) != (user_id, status):
        raise InvalidRequest("This cursor belongs to a list with other filters.", code="invalid_cursor", param="cursor")
    statuses = STATUSES if status == "all" else (status,)
    before = position["before"] if position else None
    conversations = store()
    records, last = conversations.page(principal.project_id, user_id, statuses, limit, before, include_threads)
    parents = {r.parent_id for r in records if r.parent_id is not None}
    if parents:  # a thread lives as long as its parent: none of a conversation being deleted (one BatchGetItem)
        alive = {p.id for p in conversations.get_many(principal.project_id, sorted(parents)) if p.deleting_at is None}
        records = [r for r in records if r.parent_id is None or r.parent_id in alive]
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
        keys = list_keys(principal.project_id, updated.user_id, updated.status, thread=updated.parent_id is not None)
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
    if "agent_version" in fields and "agent" not in fields:
        raise InvalidRequest("agent_version pins a version of an agent: name the agent too.", param="agent_version")
    agent = _agent_ref(principal, body.agent, body.agent_version) if "agent" in fields else None
    if "index_id" in fields:
        _check_index(principal, body.index_id)

    def change(record: ConversationRecord) -> ConversationRecord:
        if agent is not None:
            record.agent_id, record.agent_version = agent
        for name in ("title", "provider_id", "model", "system_prompt", "use_rag", "index_id"):
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
    """The conversation, its messages, sessions and threads (and theirs); a thread alone. A delete
    that failed half-way left its item marked: deleting it again finishes the job."""
    conversations = store()
    try:
        record = load(principal, conversation_id, conversations)
    except NotFound:
        marked = (
            conversations.get(principal.project_id, conversation_id) if is_conversation_id(conversation_id) else None
        )
        if marked is None or marked.deleting_at is None:
            raise
        record = marked
    conversations.delete_conversation(record)


def create_session(principal: Principal, conversation_id: str, body: SessionCreate) -> ChatSession:
    if body.model is not None and body.model_id is not None and body.model != body.model_id:
        raise InvalidRequest("Give model or model_id, not two different values.", param="model_id")
    model = body.model or body.model_id
    record = load_for_call(principal, conversation_id)  # a thread's sessions default to its parent's model
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
