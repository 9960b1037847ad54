"""GET /v1/conversations/{conversation_id}/messages: history by `cursor` or `offset`, `limit`, `order`;
`include_hidden=true` adds the injected hidden context (permission conversations:ReadHiddenContext)."""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import Field

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.conversations import HiddenContextItem, Message
from parley.services import conversations, messages

app = make_app()


class MessageList(Page[Message]):
    hidden: list[HiddenContextItem] | None = Field(
        default=None, exclude_if=lambda value: value is None, description="with include_hidden=true"
    )


@app.get("/v1/conversations/<conversation_id>/messages")
@requires("conversations:ListMessages")
def list_messages(
    conversation_id: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    cursor: Annotated[str | None, Query(min_length=1)] = None,
    offset: Annotated[int | None, Query(ge=0)] = None,
    org_id: Annotated[str | None, Query()] = None,
    include_hidden: Annotated[bool, Query()] = False,
) -> MessageList:
    caller = principal(app)
    conversations.check_org(caller, org_id)
    if include_hidden:  # refused before anything is read, or written back (settle)
        caller.require("conversations:ReadHiddenContext")
    at = position(cursor, messages.HISTORY_PAGES)
    data, after = messages.history(caller, conversation_id, limit=limit, order=order, position=at, offset=offset)
    listed = page(data, after, messages.HISTORY_PAGES)
    # include_hidden needs conversations:ReadHiddenContext besides ListMessages (checked above)
    hidden = messages.hidden_context(caller, conversation_id) if include_hidden else None
    return MessageList(data=listed.data, has_more=listed.has_more, next_cursor=listed.next_cursor, hidden=hidden)


lambda_handler = build_handler(app)
