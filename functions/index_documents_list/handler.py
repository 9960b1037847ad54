"""GET /v1/indexes/{index_id}/documents: the index's documents and their status, in id order."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.indexes import IndexDocument
from parley.services import indexes

app = make_app()


@app.get("/v1/indexes/<index_id>/documents")
@requires("indexes:ListDocuments")
def list_index_documents(
    index_id: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
) -> Page[IndexDocument]:
    data, after = indexes.list_documents(principal(app), index_id, limit, position(cursor, indexes.DOCUMENT_PAGES))
    return page(data, after, indexes.DOCUMENT_PAGES)


lambda_handler = build_handler(app)
