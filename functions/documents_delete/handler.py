"""DELETE /v1/documents/{document_id}: the metadata and the stored text."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.schemas import Deleted
from parley.services import documents

app = make_app()


@app.delete("/v1/documents/<document_id>")
@requires("documents:DeleteDocument")
def delete_document(document_id: str) -> Deleted:
    documents.delete(principal(app), document_id)
    return Deleted(id=document_id, object="document")


lambda_handler = build_handler(app)
