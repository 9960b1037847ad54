"""GET /v1/conversations/{conversation_id}/threads: the conversation's threads, oldest first."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.threads import Thread
from parley.services import threads

app = make_app()


@app.get("/v1/conversations/<conversation_id>/threads")
@requires("conversations:ListThreads")
def list_threads(
    conversation_id: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
) -> Page[Thread]:
    data, after = threads.list_threads(principal(app), conversation_id, limit, position(cursor, threads.PAGES))
    return page(data, after, threads.PAGES)


lambda_handler = build_handler(app)
