"""GET /v1/chats: newest first, cursor-paginated."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.chats import Chat
from parley.services import chats

app = make_app()


@app.get("/v1/chats")
@requires("chats:ListChats")
def list_chats(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
) -> Page[Chat]:
    data, after = chats.list_chats(principal(app), limit, position(cursor, chats.PAGES))
    return page(data, after, chats.PAGES)


lambda_handler = build_handler(app)
