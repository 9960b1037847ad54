"""GET /v1/indexes: the project's knowledge indexes, cursor-paginated, newest first."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.indexes import Index
from parley.services import indexes

app = make_app()


@app.get("/v1/indexes")
@requires("indexes:ListIndexes")
def list_indexes(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
) -> Page[Index]:
    data, after = indexes.list_indexes(principal(app), limit, position(cursor, indexes.INDEX_PAGES))
    return page(data, after, indexes.INDEX_PAGES)


lambda_handler = build_handler(app)
