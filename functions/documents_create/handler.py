"""POST /v1/documents: a named text (stored in S3) that messages can reference by document_id."""

import json

from aws_lambda_powertools.event_handler import Response

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.documents import DocumentCreate
from parley.services import documents

app = make_app()


@app.post("/v1/documents")
@requires("documents:CreateDocument")
def create_document(body: DocumentCreate) -> Response[str]:
    return Response(201, "application/json", json.dumps(documents.create(principal(app), body).public()))


lambda_handler = build_handler(app)
