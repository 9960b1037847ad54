"""GET /v1/search/messages: full-text search over the project's conversation messages (a
user's, or one conversation's), best match first, with highlighted snippets."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.indexes import MessageSearchHit
from parley.services import search

app = make_app()


@app.get("/v1/search/messages")
@requires("search:SearchMessages")
def search_messages(
    q: Annotated[str, Query(min_length=1, max_length=search.MAX_QUERY_CHARS)],
    user_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    conversation_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
) -> Page[MessageSearchHit]:
    data, after = search.search_messages(
        principal(app),
        q,
        user_id=user_id,
        conversation_id=conversation_id,
        limit=limit,
        position=position(cursor, search.PAGES),
    )
    return page(data, after, search.PAGES)


lambda_handler = build_handler(app)
