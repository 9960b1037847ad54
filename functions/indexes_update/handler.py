"""PATCH /v1/indexes/{index_id}: name, description, metadata, chunking (for documents added next)."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.indexes import Index, IndexUpdate
from parley.services import indexes

app = make_app()


@app.patch("/v1/indexes/<index_id>")
@requires("indexes:UpdateIndex")
def update_index(index_id: str, body: IndexUpdate) -> Index:
    return indexes.update(principal(app), index_id, body)


lambda_handler = build_handler(app)
