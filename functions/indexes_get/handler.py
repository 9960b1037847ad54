"""GET /v1/indexes/{index_id}: a knowledge index with its document counts."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.indexes import Index
from parley.services import indexes

app = make_app()


@app.get("/v1/indexes/<index_id>")
@requires("indexes:GetIndex")
def get_index(index_id: str) -> Index:
    return indexes.get(principal(app), index_id)


lambda_handler = build_handler(app)
