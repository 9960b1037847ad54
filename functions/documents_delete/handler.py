"""DELETE /v1/documents/{document_id}: the metadata and the stored text."""

from typing import Any

from parley.api.app import build_handler, make_app, principal, requires
from parley.services import documents

app = make_app()


@app.delete("/v1/documents/<document_id>")
@requires("documents:DeleteDocument")
def delete_document(document_id: str) -> dict[str, Any]:
    documents.delete(principal(app), document_id)
    return {"id": document_id, "object": "document", "deleted": True}


lambda_handler = build_handler(app)
