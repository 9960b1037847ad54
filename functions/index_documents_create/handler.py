"""POST /v1/indexes/{index_id}/documents: add (or replace) a document of the index. A small one
is ingested before the answer (status ready or failed); a larger one answers 202 with status
processing, and the ingestion worker finishes it."""

from aws_lambda_powertools.event_handler import Response

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.indexes import IndexDocument, IndexDocumentAdd
from parley.services import indexes

app = make_app()

RESPONSES = {
    201: {
        "description": "Ingested (ready), or failed with the reason",
        "content": {"application/json": {"model": IndexDocument}},
    },
    202: {
        "description": "Accepted: the ingestion worker is on it (processing)",
        "content": {"application/json": {"model": IndexDocument}},
    },
}


@app.post("/v1/indexes/<index_id>/documents", responses=RESPONSES)
@requires("indexes:AddDocument")
def add_index_document(index_id: str, body: IndexDocumentAdd) -> Response[str]:
    document = indexes.add_document(principal(app), index_id, body)
    status = 202 if document.status == "processing" else 201
    return Response(status, "application/json", document.model_dump_json())


lambda_handler = build_handler(app)
