"""GET /v1/indexes/{index_id}/documents/{document_id}: a document of the index and its status."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.indexes import IndexDocument
from parley.services import indexes

app = make_app()


@app.get("/v1/indexes/<index_id>/documents/<document_id>")
@requires("indexes:GetDocument")
def get_index_document(index_id: str, document_id: str) -> IndexDocument:
    return indexes.get_document(principal(app), index_id, document_id)


lambda_handler = build_handler(app)
