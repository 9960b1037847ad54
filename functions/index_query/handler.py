"""POST /v1/indexes/{index_id}/query: the index's best chunks for a query, as citations."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.indexes import IndexQuery, IndexQueryResult, RagOptions
from parley.services import indexes

app = make_app()


@app.post("/v1/indexes/<index_id>/query")
@requires("indexes:QueryIndex")
def query_index(index_id: str, body: IndexQuery) -> IndexQueryResult:
    options = RagOptions(top_k=body.top_k, min_score=body.min_score, filter=body.filter)
    return IndexQueryResult(data=indexes.retrieve(principal(app), index_id, body.query, options, param=None))


lambda_handler = build_handler(app)
