"""Chats (seed 003): stored completion configurations, and completions through them."""

from __future__ import annotations

from collections.abc import Iterator

from parley.domain.chat import ChatCompletionRequest
from parley.domain.chats import Chat, ChatCompletionInput, ChatCreate, ChatRecord, ChatUpdate
from parley.domain.clock import iso
from parley.domain.errors import InvalidRequest, NotFound
from parley.domain.ids import has_prefix, new_id
from parley.domain.paging import Pages, Position
from parley.domain.principal import Principal
from parley.domain.replies import ReplyEvent
from parley.services import completions, indexes
from parley.services import providers as provider_store
from parley.storage.resources import ResourceRepository

ROUTE = "POST /v1/chats/{chat_id}/completions"


def _repository() -> ResourceRepository[ChatRecord]:
    return ResourceRepository("chat", ChatRecord)


def _now() -> str:
    return iso()


def _view(record: ChatRecord) -> Chat:
    return Chat(**{k: v for k, v in record.model_dump().items() if k in Chat.model_fields})


def _check_provider(principal: Principal, provider_id: str) -> None:
    try:
        provider_store.get(principal, provider_id)
    except NotFound:
        raise InvalidRequest(
            f"No AI provider {provider_id!r} in this project.", code="provider_not_found", param="ai_provider_id"
        ) from None


def create(principal: Principal, body: ChatCreate) -> Chat:
    if body.project_id is not None and body.project_id != principal.project_id:
        raise InvalidRequest(
            "project_id does not match this API key's project.", code="project_mismatch", param="project_id"
        )
    _check_provider(principal, body.ai_provider_id)
    _check_index(principal, body.index_id)
    at = _now()
    record = ChatRecord(
        id=new_id("cht"),
        project_id=principal.project_id,
        ai_provider_id=body.ai_provider_id,
        name=body.name,
        system_message=body.system_message,
        model=body.model,
        index_id=body.index_id,
        created_at=at,
        updated_at=at,
        version=1,
    )
    _repository().put_new(record)
    return _view(record)


def _load(principal: Principal, chat_id: str) -> ChatRecord:
    record = _repository().get(principal.project_id, chat_id) if has_prefix(chat_id, "cht") else None
    if record is None:
        raise NotFound(f"No chat {chat_id!r}.", code="chat_not_found")
    return record


def get(principal: Principal, chat_id: str) -> Chat:
    return _view(_load(principal, chat_id))


PAGES = Pages("chats", {"after": str})


def list_chats(principal: Principal, limit: int, position: Position | None) -> tuple[list[Chat], Position | None]:
    records, last = _repository().page(principal.project_id, limit, position["after"] if position else None)
    return [_view(r) for r in records], ({"after": last} if last else None)


def update(principal: Principal, chat_id: str, body: ChatUpdate) -> Chat:
    record = _load(principal, chat_id)
    fields = body.model_fields_set
    if "ai_provider_id" in fields:
        if body.ai_provider_id is None:
            raise InvalidRequest("A chat needs an ai_provider_id.", param="ai_provider_id")
        _check_provider(principal, body.ai_provider_id)
    if "index_id" in fields:
        _check_index(principal, body.index_id)
    changes = {name: getattr(body, name) for name in fields}
    new = record.model_copy(update={**changes, "updated_at": _now(), "version": record.version + 1})
    _repository().replace(new, record.version)
    return _view(new)


def delete(principal: Principal, chat_id: str) -> None:
    if not (has_prefix(chat_id, "cht") and _repository().delete(principal.project_id, chat_id)):
        raise NotFound(f"No chat {chat_id!r}.", code="chat_not_found")


def _request(principal: Principal, chat_id: str, body: ChatCompletionInput) -> ChatCompletionRequest:
    """The stateless request this chat stands for: its provider, its model (else the provider's
    default_model, else the model the call names), its system message (a leading system message
    of the call replaces it for this call only; the chat is not changed)."""
    chat = _load(principal, chat_id)
    sampling = {name: getattr(body, name) for name in body.model_fields_set - {"model", "messages", "index_id"}}
    return ChatCompletionRequest(
        **sampling,
        messages=body.messages,
        model=chat.model or _provider_default(principal, chat) or body.model,
        provider_id=chat.ai_provider_id,
        system_message=chat.system_message,
        index_id=body.index_id or chat.index_id,
    )


def _check_index(principal: Principal, index_id: str | None) -> None:
    if index_id is not None:
        indexes.get_for(principal, index_id, param="index_id")


def _provider_default(principal: Principal, chat: ChatRecord) -> str | None:
    try:
        return provider_store.get(principal, chat.ai_provider_id).default_model
    except NotFound:
        raise InvalidRequest(
            "The chat's AI provider no longer exists; update the chat.",
            code="provider_not_found",
            param="ai_provider_id",
        ) from None


def _context(context: completions.CallContext | None, chat_id: str, request_id: str) -> completions.CallContext:
    context = context or completions.CallContext()
    context.route, context.request_id, context.resource_ids = ROUTE, request_id, [chat_id]
    return context


def complete(
    principal: Principal,
    chat_id: str,
    body: ChatCompletionInput,
    request_id: str,
    context: completions.CallContext | None = None,
) -> list[ReplyEvent]:
    """`context` (optional) comes back with the call's quota."""
    context = _context(context, chat_id, request_id)
    return completions.create(principal, _request(principal, chat_id, body), context)


def stream(
    principal: Principal,
    chat_id: str,
    body: ChatCompletionInput,
    request_id: str,
    context: completions.CallContext | None = None,
) -> Iterator[ReplyEvent]:
    context = _context(context, chat_id, request_id)
    return completions.stream(principal, _request(principal, chat_id, body), context)
