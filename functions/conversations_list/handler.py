"""GET /v1/conversations: newest activity first, filtered by user_id and status, cursor-paginated;
threads only with include_threads=true."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.conversations import Conversation
from parley.services import conversations
from parley.services.conversations import StatusFilter

app = make_app()


@app.get("/v1/conversations")
@requires("conversations:ListConversations")
def list_conversations(
    user_id: Annotated[str | None, Query(min_length=1, max_length=256, pattern=r"^[^#]+$")] = None,
    status: Annotated[StatusFilter, Query()] = "active",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
    org_id: Annotated[str | None, Query()] = None,
    include_threads: Annotated[
        bool, Query(description="Threads too (by default only conversations; a thread has parent_id)")
    ] = False,
) -> Page[Conversation]:
    caller = principal(app)
    conversations.check_org(caller, org_id)
    pages = conversations.WITH_THREADS_PAGES if include_threads else conversations.PAGES
    at = position(cursor, pages)
    data, after = conversations.list_conversations(
        caller, user_id=user_id, status=status, limit=limit, position=at, include_threads=include_threads
    )
    return page(data, after, pages)


lambda_handler = build_handler(app)
