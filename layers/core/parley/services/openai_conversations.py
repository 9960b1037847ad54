"""OpenAI's Conversations API over Parley's conversations (parley.domain.openai_conversations).

Creating a conversation here creates a Parley conversation (GET /v1/conversations/{id} shows it),
and a Parley conversation (or one the Responses API created) is readable here; items are its
messages, appended with the same transaction a send uses (conditioned on next_seq and version).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from parley.domain.chat import ToolCall
from parley.domain.conversations import ConversationCreate, ConversationRecord, ConversationUpdate, MessageRecord
from parley.domain.errors import Conflict, InvalidRequest, NotFound
from parley.domain.ids import new_id
from parley.domain.openai_conversations import (
    OpenAIConversation,
    OpenAIConversationCreate,
    OpenAIConversationDeleted,
    OpenAIConversationUpdate,
    OpenAIItemList,
    OpenAIItemsCreate,
)
from parley.domain.principal import Principal
from parley.domain.responses import (
    FunctionCallItem,
    FunctionCallOutputItem,
    MessageItem,
    function_item,
    function_item_id,
    message_item,
)
from parley.providers.tokenizer import count_message
from parley.services import conversations as lifecycle
from parley.services.responses import Turn, turns_of
from parley.storage.conversations import ConversationStore, retry_stale

MAX_LIST = 100
_READ_SLACK = 8  # messages read beyond a page's need, so a few deleted seqs rarely cost another query


def _epoch(at: str) -> int:
    return int(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp())


def view(record: ConversationRecord) -> OpenAIConversation:
    return OpenAIConversation(id=record.id, created_at=_epoch(record.created_at), metadata=dict(record.metadata))


def _load(
    principal: Principal, conversation_id: str, conversations: ConversationStore | None = None
) -> ConversationRecord:
    return lifecycle.load(principal, conversation_id, conversations)


# ---------------------------------------------------------------- conversations


def create(principal: Principal, body: OpenAIConversationCreate) -> OpenAIConversation:
    turns = _turns(body.items or [])
    created = lifecycle.create(principal, ConversationCreate(metadata=body.metadata or None))
    conversations = lifecycle.store()
    if turns:
        try:
            _append(principal, created.id, turns, conversations)
        except BaseException:
            # the conversation and its items are one request: none of it stays when the items fail
            lifecycle.delete(principal, created.id)
            raise
    return view(_load(principal, created.id, conversations))


def retrieve(principal: Principal, conversation_id: str) -> OpenAIConversation:
    return view(_load(principal, conversation_id))


def update(principal: Principal, conversation_id: str, body: OpenAIConversationUpdate) -> OpenAIConversation:
    lifecycle.update(principal, conversation_id, ConversationUpdate(metadata=body.metadata or {}))
    return retrieve(principal, conversation_id)


def delete(principal: Principal, conversation_id: str) -> OpenAIConversationDeleted:
    lifecycle.delete(principal, conversation_id)
    return OpenAIConversationDeleted(id=conversation_id)


# ---------------------------------------------------------------- items: writing


def _turns(items: list[MessageItem | FunctionCallItem | FunctionCallOutputItem]) -> list[Turn]:
    for i, item in enumerate(items):
        if isinstance(item, MessageItem) and item.role in ("system", "developer"):
            raise InvalidRequest(
                f"items[{i}] is a {item.role} message: a Parley conversation holds user, assistant and "
                "tool messages; give instructions with the request (instructions=) instead.",
                code="unsupported_item",
                param=f"items[{i}].role",
            )
    return turns_of(items, "items")[1]


def _token(*parts: object) -> str:
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()[:36]


def _append(
    principal: Principal, conversation_id: str, turns: list[Turn], conversations: ConversationStore
) -> list[MessageRecord]:
    """The turns as finished messages after the conversation's last one (one transaction)."""
    ids = [new_id("msg") for _ in turns]

    def attempt() -> list[MessageRecord]:
        current = _load(principal, conversation_id, conversations)
        if current.status != "active":
            raise Conflict(
                f"The conversation is {current.status.replace('_', ' ')}; items cannot be added now.",
                code=f"conversation_{current.status}",
            )
        seq, at = current.next_seq, lifecycle.now()
        stored = [
            MessageRecord(
                id=ids[i],
                conversation_id=conversation_id,
                seq=seq + i,
                role=turn.role,
                content=turn.text,
                status="completed",
                tool_calls=[c.model_dump() for c in turn.tool_calls] or None,
                tool_call_id=turn.tool_call_id,
                tokens=count_message(
                    current.model or "", turn.text + "".join(c.function.arguments for c in turn.tool_calls)
                ),
                created_at=at,
                completed_at=at,
                org_id=principal.org_id,
                event_seq=current.version + 1 + i,
                user_id=current.user_id,
            )
            for i, turn in enumerate(turns)
        ]
        changes: dict[str, Any] = {
            "next_seq": seq + len(stored),
            "message_count": current.message_count + len(stored),
            "updated_at": at,
            "activity": f"{at}#{conversation_id}",
            "version": current.version + len(stored),
        }
        conversations.append_messages(
            current, stored, changes, token=_token(principal.project_id, conversation_id, ids[0], seq)
        )
        return stored

    result: list[MessageRecord] = retry_stale(attempt)
    return result


def create_items(principal: Principal, conversation_id: str, body: OpenAIItemsCreate) -> OpenAIItemList:
    conversations = lifecycle.store()
    stored = _append(principal, conversation_id, _turns(body.items), conversations)
    data = [item for message in stored for item in items_of(message)]
    return OpenAIItemList(data=data, first_id=data[0]["id"], last_id=data[-1]["id"], has_more=False)


# ---------------------------------------------------------------- items: reading


def _status(message: MessageRecord) -> str:
    return {"completed": "completed", "pending": "in_progress"}.get(message.status, "incomplete")


def items_of(message: MessageRecord) -> list[dict[str, Any]]:
    """A stored message as the conversation items it is (see the domain module)."""
    status = _status(message)
    if message.role == "tool":
        return [
            {
                "id": f"fco_{message.id.split('_', 1)[-1]}",
                "type": "function_call_output",
                "call_id": message.tool_call_id or "",
                "output": message.content,
                "status": status,
            }
        ]
    if message.role == "user":
        content = [{"type": "input_text", "text": message.content}]
        return [{"id": message.id, "type": "message", "role": "user", "status": status, "content": content}]
    calls = [ToolCall(**c) for c in message.tool_calls or ()]
    items = [message_item(message.id, message.content, status)] if message.content or not calls else []
    return items + [function_item(function_item_id(message.id, i), c, "completed") for i, c in enumerate(calls)]


def _message_id(item_id: str) -> tuple[str, int | None] | None:
    """The message an item id names, and for a function_call item its call's index."""
    prefix, _, suffix = item_id.partition("_")
    if not suffix:
        return None
    if prefix == "msg":
        return item_id, None
    if prefix == "fco":
        return f"msg_{suffix}", None
    if prefix == "fc" and len(suffix) > 2 and suffix[-2:].isdigit():
        return f"msg_{suffix[:-2]}", int(suffix[-2:])
    return None


def _item_not_found(item_id: str) -> NotFound:
    return NotFound(f"No item {item_id!r} in this conversation.", code="item_not_found")


def _find(
    principal: Principal, conversation_id: str, item_id: str, conversations: ConversationStore
) -> tuple[MessageRecord, dict[str, Any]]:
    named = _message_id(item_id)
    located = conversations.message_seq(principal.project_id, conversation_id, named[0]) if named else None
    message = conversations.get_message(principal.project_id, conversation_id, located[0]) if located else None
    if message is None:
        raise _item_not_found(item_id)
    settled = [message]
    lifecycle.settle(principal, conversation_id, settled, conversations)
    for item in items_of(settled[0]):
        if item["id"] == item_id:
            return settled[0], item
    raise _item_not_found(item_id)


def retrieve_item(principal: Principal, conversation_id: str, item_id: str) -> dict[str, Any]:
    conversations = lifecycle.store()
    _load(principal, conversation_id, conversations)
    return _find(principal, conversation_id, item_id, conversations)[1]


def list_items(
    principal: Principal,
    conversation_id: str,
    *,
    limit: int = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> OpenAIItemList:
    """A page of items in seq order (desc: newest first), after the item `after` (exclusive)."""
    if not 1 <= limit <= MAX_LIST:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIST}.", param="limit")
    conversations = lifecycle.store()
    record = _load(principal, conversation_id, conversations)
    descending = order == "desc"
    low, high = 1, record.next_seq - 1
    skip: str | None = None
    if after is not None:
        message, _ = _find(principal, conversation_id, after, conversations)
        ordered = items_of(message)[::-1] if descending else items_of(message)
        ids = [i["id"] for i in ordered]
        pending = ordered[ids.index(after) + 1 :]  # the rest of after's own message
        skip = message.id
        if descending:
            high = message.seq - 1
        else:
            low = message.seq + 1
    else:
        pending = []
    items = list(pending)
    while len(items) <= limit and low <= high:
        want = limit + 1 - len(items) + _READ_SLACK
        lo, hi = (max(low, high - want + 1), high) if descending else (low, min(high, low + want - 1))
        messages = conversations.message_range(principal.project_id, conversation_id, lo, hi, descending)
        lifecycle.settle(principal, conversation_id, messages, conversations)
        for message in messages:
            if message.id != skip:
                items += items_of(message)[::-1] if descending else items_of(message)
        if descending:
            high = lo - 1
        else:
            low = hi + 1
    page = items[:limit]
    return OpenAIItemList(
        data=page,
        first_id=page[0]["id"] if page else "",
        last_id=page[-1]["id"] if page else "",
        has_more=len(items) > limit,
    )


def delete_item(principal: Principal, conversation_id: str, item_id: str) -> OpenAIConversation:
    """Delete the message an item is (a user or assistant message with the function calls it
    made, a function call output); a function_call item alone only when it is its message's only
    item. A reply still being generated cannot be deleted (409)."""
    conversations = lifecycle.store()

    def attempt() -> ConversationRecord:
        current = _load(principal, conversation_id, conversations)
        message, item = _find(principal, conversation_id, item_id, conversations)
        if message.status == "pending":
            raise Conflict(
                "The reply is still being generated; delete it when it has finished.", code="item_in_progress"
            )
        if item["type"] == "function_call" and len(items_of(message)) > 1:
            raise InvalidRequest(
                f"{item_id!r} is one of the tool calls of message {message.id!r}; delete that item "
                "(the message with its calls) instead.",
                code="item_not_deletable",
                param="item_id",
            )
        at = lifecycle.now()
        changes: dict[str, Any] = {
            "message_count": max(current.message_count - 1, 0),
            "updated_at": at,
            "activity": f"{at}#{conversation_id}",
            "version": current.version + 1,
        }
        conversations.delete_message(current, message, changes)
        return current

    retry_stale(attempt)
    return retrieve(principal, conversation_id)
