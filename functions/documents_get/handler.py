"""GET /v1/documents/{document_id}: metadata; `include=content` adds the text."""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.documents import Document
from parley.services import documents

app = make_app()


@app.get("/v1/documents/<document_id>")
@requires("documents:GetDocument")
def get_document(document_id: str, include: Annotated[Literal["content"] | None, Query()] = None) -> Document:
    return documents.get(principal(app), document_id, include_content=include == "content")


lambda_handler = build_handler(app)
