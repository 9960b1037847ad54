"""DELETE /v1/indexes/{index_id}/documents/{document_id}: the document and its chunks."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.schemas import Deleted
from parley.services import indexes

app = make_app()


@app.delete("/v1/indexes/<index_id>/documents/<document_id>")
@requires("indexes:DeleteDocument")
def delete_index_document(index_id: str, document_id: str) -> Deleted:
    indexes.delete_document(principal(app), index_id, document_id)
    return Deleted(id=document_id, object="index.document")


lambda_handler = build_handler(app)
