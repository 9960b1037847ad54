"""Full-text message search: the index fed from the tables' streams, and the search itself.

The indexer (`index_records`, the `search_index` consumer) keeps the engine's message index in
step with the messages table: a visible message (seq > 0, a user's or an assistant's, not
pending, with text) is added or replaced (an edit or a finished reply replaces it); a removed
message leaves; a conversation whose delete began (its `deleting_at` mark) or whose item is gone
leaves at once, with all its messages. Hidden context (seq < 0), summaries (seq 0), tool
messages and pending replies are never indexed. Records are applied in stream order; the first
that fails is reported, so the stream delivers it and everything after it again (writes are
idempotent upserts and deletes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from parley.domain.indexes import MessageSearchHit
from parley.domain.paging import Pages, Position
from parley.domain.principal import Principal
from parley.events.mapping import CONVERSATION_SK, Change
from parley.search.base import MessageDoc, MessageQuery, SearchEngine

log = logging.getLogger(__name__)
SEARCHABLE_ROLES = ("user", "assistant")
PAGES = Pages("message_search", {"offset": int})
MAX_QUERY_CHARS = 1024


def _engine() -> SearchEngine:
    from parley.search.factory import engine  # noqa: PLC0415

    return engine()


_engine_override: Callable[[], SearchEngine] | None = None


def set_engine(factory: Callable[[], SearchEngine] | None) -> None:
    global _engine_override
    _engine_override = factory


def engine() -> SearchEngine:
    return (_engine_override or _engine)()


@dataclass
class Indexed:
    puts: int = 0
    deletes: int = 0
    failed: list[str] = field(default_factory=list)  # the first failed record's sequence number


def _scope(pk: str) -> tuple[str, str]:
    project_id, _, conversation_id = pk.partition("#")
    return project_id, conversation_id


def doc_of(change: Change) -> MessageDoc | None:
    """The message as search indexes it, or None when it is not searchable (or was removed)."""
    new = change.new
    if change.kind == "REMOVE" or new is None:
        return None
    seq = int(change.keys.get("sk", new.get("seq", 0)))
    content = str(new.get("content") or "")
    if seq <= 0 or new.get("role") not in SEARCHABLE_ROLES or new.get("status") == "pending" or not content.strip():
        return None
    project_id, conversation_id = _scope(str(change.keys.get("pk", "")))
    return MessageDoc(
        project_id=project_id,
        conversation_id=conversation_id,
        message_id=str(new["id"]),
        role=str(new["role"]),
        content=content,
        created_at=str(new.get("created_at", "")),
        user_id=new.get("user_id"),
    )


def index_changes(changes: Sequence[tuple[str, Change]], search: SearchEngine | None = None) -> Indexed:
    """Apply the changes in order; consecutive puts go to the engine together."""
    search = search or engine()
    done = Indexed()
    batch: list[MessageDoc] = []
    batch_start: str | None = None

    def flush() -> None:
        nonlocal batch, batch_start
        if batch:
            search.put_messages(batch)
            done.puts += len(batch)
        batch, batch_start = [], None

    for sequence, change in changes:
        try:
            if change.table == "conversations":
                flush()
                if _conversation_gone(change):
                    project_id, conversation_id = _scope(str(change.keys.get("pk", "")))
                    search.delete_conversation(project_id, conversation_id)
                    done.deletes += 1
                continue
            doc = doc_of(change)
            if doc is not None:
                batch_start = batch_start or sequence
                batch.append(doc)
                continue
            flush()
            old = change.old or {}
            if old.get("id") and int(change.keys.get("sk", 0)) > 0:
                # removed, or no longer searchable (say, its text was cleared): out of the index
                project_id, conversation_id = _scope(str(change.keys.get("pk", "")))
                search.delete_messages(project_id, conversation_id, [str(old["id"])])
                done.deletes += 1
        except Exception:  # reported: the stream delivers this record and the rest again
            log.exception(
                "search indexing failed; the stream will deliver the record again", extra={"sequence": sequence}
            )
            done.failed = [batch_start or sequence]
            return done
    try:
        flush()
    except Exception:  # reported, as above
        log.exception(
            "search indexing failed; the stream will deliver the records again", extra={"sequence": batch_start}
        )
        done.failed = [str(batch_start)]
    return done


def _conversation_gone(change: Change) -> bool:
    if str(change.keys.get("sk", "")) != CONVERSATION_SK:
        return False
    if change.kind == "REMOVE":
        return True
    was = (change.old or {}).get("deleting_at")
    return bool((change.new or {}).get("deleting_at")) and not was


def index_records(records: list[dict[str, Any]], search: SearchEngine | None = None) -> Indexed:
    from parley.services.events import change_of  # noqa: PLC0415

    changes = [(str(r.get("dynamodb", {}).get("SequenceNumber", "")), change_of(r)) for r in records]
    return index_changes(changes, search)


def search_messages(
    principal: Principal,
    q: str,
    *,
    user_id: str | None,
    conversation_id: str | None,
    limit: int,
    position: Position | None,
) -> tuple[list[MessageSearchHit], Position | None]:
    from parley.domain.errors import InvalidRequest  # noqa: PLC0415

    if not q.strip():
        raise InvalidRequest("Give a search query (q).", code="query_required", param="q")
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidRequest(f"The query is over {MAX_QUERY_CHARS} characters.", code="query_too_long", param="q")
    offset = int(position["offset"]) if position else 0
    found = engine().search_messages(
        MessageQuery(
            project_id=principal.project_id,
            q=q,
            user_id=user_id,
            conversation_id=conversation_id,
            limit=limit,
            offset=offset,
        )
    )
    hits = [
        MessageSearchHit(
            conversation_id=h.conversation_id,
            message_id=h.message_id,
            role=h.role,
            user_id=h.user_id,
            snippet=h.snippet,
            score=round(h.score, 6),
            created_at=h.created_at,
        )
        for h in found.hits
    ]
    return hits, ({"offset": offset + len(hits)} if found.more and hits else None)
