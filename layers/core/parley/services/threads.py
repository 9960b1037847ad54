"""Threads: sub-conversations anchored to a message of their parent (seed 001, issue 15).

A thread is stored as a conversation of its own (parley.services.conversations: a `thr_` id,
`parent_id`, `parent_message_id`), so every conversation route takes its id: send, stream,
history, context, sessions, archive, delete. What only threads have is here:

- create and list (POST/GET /v1/conversations/{id}/threads);
- the start of a thread's model context (`prefix`, used by parley.services.context.build):
  the anchor message, and with `include_parent_history` the parent's messages before it, as many
  as the window's budget leaves. They are read from the parent's partition at each call (two
  bounded reads: the parent's item for its settings, one query for the anchor and what precedes
  it), and a thread's own messages live in its own partition, so they never enter the parent's
  context.

A thread of a thread is refused (400 `nested_thread`): the anchor, the inherited settings and
the cascade on delete are one level deep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from parley.domain.context import Turn, Window
from parley.domain.conversations import ConversationRecord, WindowLine
from parley.domain.errors import Conflict, InvalidRequest, NotFound
from parley.domain.ids import has_prefix, new_id
from parley.domain.paging import Pages, Position
from parley.domain.principal import Principal
from parley.domain.threads import Thread, ThreadAnchor, ThreadContext, ThreadCreate
from parley.services import conversations as lifecycle
from parley.storage.conversations import ConversationStore, list_keys

PAGES = Pages("threads", {"parent_id": str, "after": str})
ANCHOR_ROLES = ("user", "assistant")


def view(record: ConversationRecord) -> Thread:
    assert record.parent_id is not None
    assert record.parent_message_id is not None
    return Thread(
        id=record.id,
        conversation_id=record.parent_id,
        parent_message_id=record.parent_message_id,
        parent_message_seq=record.parent_message_seq or 0,
        title=record.title,
        status=record.status,
        include_parent_history=record.include_parent_history,
        metadata=record.metadata,
        message_count=record.message_count,
        last_message_at=record.last_message_at,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def _message_not_found(message_id: str) -> NotFound:
    return NotFound(
        f"No message {message_id!r} in this conversation.", code="message_not_found", param="parent_message_id"
    )


def create(principal: Principal, conversation_id: str, body: ThreadCreate) -> Thread:
    store = lifecycle.store()
    parent = lifecycle.load(principal, conversation_id, store)
    if parent.parent_id is not None:
        raise InvalidRequest(
            "A thread cannot have threads of its own; anchor the thread to a message of the parent conversation.",
            code="nested_thread",
        )
    if parent.status == "archived":
        raise Conflict("The conversation is archived; unarchive it first.", code="conversation_archived")
    found = (
        store.message_seq(principal.project_id, conversation_id, body.parent_message_id)
        if has_prefix(body.parent_message_id, "msg")
        else None
    )
    if found is None:
        raise _message_not_found(body.parent_message_id)
    seq, role = found
    if role not in ANCHOR_ROLES:
        raise InvalidRequest(
            "A thread is anchored to a user or an assistant message.", code="invalid_anchor", param="parent_message_id"
        )
    thread_id, at = new_id("thr"), lifecycle.now()
    record = ConversationRecord(
        id=thread_id,
        project_id=principal.project_id,
        org_id=principal.org_id,
        title=body.title,
        user_id=parent.user_id,  # the parent's end user: ?user_id= lists and events find the thread under them
        status="active",
        metadata=body.metadata or {},
        message_count=0,
        next_seq=1,
        created_at=at,
        updated_at=at,
        activity=f"{at}#{thread_id}",
        version=1,
        parent_id=conversation_id,
        parent_message_id=body.parent_message_id,
        parent_message_seq=seq,
        include_parent_history=body.include_parent_history,
        **list_keys(principal.project_id, parent.user_id, "active", thread=True),
    )
    if not store.put_thread(record):  # the parent was deleted (or is being) since it was read
        raise NotFound(f"No conversation {conversation_id!r}.", code="conversation_not_found")
    return view(record)


def list_threads(
    principal: Principal, conversation_id: str, limit: int, position: Position | None
) -> tuple[list[Thread], Position | None]:
    """The conversation's threads, oldest first (a thread's list is empty: threads have none)."""
    store = lifecycle.store()
    lifecycle.load(principal, conversation_id, store)
    if position is not None and position["parent_id"] != conversation_id:
        raise InvalidRequest("This cursor belongs to another listing.", code="invalid_cursor", param="cursor")
    after = position["after"] if position else None
    records, last = store.threads(principal.project_id, conversation_id, limit, after)
    return [view(r) for r in records], ({"parent_id": conversation_id, "after": last} if last else None)


# ---------------------------------------------------------------- the start of a thread's context


@dataclass(frozen=True)
class Prefix:
    """What a thread's window starts with: the anchor (always in, like the system prompt; None
    while it is not a completed message with content) and the parent's earlier messages that may
    fill what the window leaves (newest first, when include_parent_history)."""

    parent_id: str
    anchor_id: str
    anchor_seq: int
    anchor_role: str | None
    anchor: Turn | None
    include_parent_history: bool
    earlier: tuple[Turn, ...]
    used: tuple[Turn, ...] = ()  # the earlier ones the window took, oldest first (set by fill)

    @property
    def anchor_tokens(self) -> int:
        return self.anchor.tokens if self.anchor else 0

    @property
    def turns(self) -> list[Turn]:
        """The parent's turns as the model receives them, oldest first, the anchor last."""
        return [*self.used, *([self.anchor] if self.anchor else [])]

    def fill(self, window: Window, max_messages: int) -> tuple[Prefix, Window]:
        """Take the newest of the parent's earlier messages that fit what the window left (tokens
        and message count); the window's tokens then count them."""
        room = window.max_tokens - window.tokens
        count = max_messages - len(window.turns) - (1 if self.anchor else 0)
        used: list[Turn] = []
        for turn in self.earlier:
            if len(used) >= count or turn.tokens > room:
                break
            used.append(turn)
            room -= turn.tokens
        used.reverse()
        taken = sum(t.tokens for t in used)
        return replace(self, used=tuple(used)), replace(window, tokens=window.tokens + taken)

    def view(self) -> ThreadContext:
        return ThreadContext(
            parent_id=self.parent_id,
            anchor=ThreadAnchor(
                message_id=self.anchor_id,
                seq=self.anchor_seq,
                role=self.anchor_role,
                tokens=self.anchor_tokens,
                included=self.anchor is not None,
            ),
            include_parent_history=self.include_parent_history,
            parent_messages=len(self.used),
            parent_tokens=sum(t.tokens for t in self.used),
            parent_from_seq=self.used[0].seq if self.used else None,
            parent_to_seq=self.used[-1].seq if self.used else None,
        )

    def record(self) -> dict[str, object]:
        """What a reply stores about it (GET .../context shows it in last_call)."""
        return {
            "thread_anchor_seq": self.anchor_seq if self.anchor else None,
            "thread_parent_messages": len(self.used),
        }


def prefix(
    principal: Principal,
    record: ConversationRecord,
    store: ConversationStore,
    read_limit: int,
    to_turn: Callable[[WindowLine], Turn | None],
) -> Prefix | None:
    """A thread's prefix (None for a conversation): one query of the parent's partition, for the
    anchor alone or for the anchor and up to `read_limit` messages before it."""
    if record.parent_id is None or record.parent_message_id is None or record.parent_message_seq is None:
        return None
    seq = record.parent_message_seq
    limit = 1 + (read_limit if record.include_parent_history else 0)
    lines, _ = store.newest(principal.project_id, record.parent_id, seq + 1, limit)
    anchor_line = lines[0] if lines and lines[0].seq == seq else None
    earlier = [t for t in (to_turn(line) for line in lines if line.seq < seq) if t is not None]
    return Prefix(
        parent_id=record.parent_id,
        anchor_id=record.parent_message_id,
        anchor_seq=seq,
        anchor_role=anchor_line.role if anchor_line else None,
        anchor=to_turn(anchor_line) if anchor_line else None,
        include_parent_history=record.include_parent_history,
        earlier=tuple(earlier),
    )
