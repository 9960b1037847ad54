"""POST /v1/documents: a named text (stored in S3) that messages can reference by document_id."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.documents import Document, DocumentCreate
from parley.services import documents

app = make_app()


@app.post("/v1/documents", status_code=201)
@requires("documents:CreateDocument")
def create_document(body: DocumentCreate) -> Document:
    return documents.create(principal(app), body)


lambda_handler = build_handler(app)
