"""GET /v1/documents: newest first, cursor-paginated (metadata only)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.documents import Document
from parley.services import documents

app = make_app()


@app.get("/v1/documents")
@requires("documents:ListDocuments")
def list_documents(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
) -> Page[Document]:
    data, after = documents.list_documents(principal(app), limit, position(cursor, documents.PAGES))
    return page(data, after, documents.PAGES)


lambda_handler = build_handler(app)
