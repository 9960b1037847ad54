"""DELETE /v1/indexes/{index_id}: the index, its documents and their chunks (resumable)."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.schemas import Deleted
from parley.services import indexes

app = make_app()


@app.delete("/v1/indexes/<index_id>")
@requires("indexes:DeleteIndex")
def delete_index(index_id: str) -> Deleted:
    indexes.delete(principal(app), index_id)
    return Deleted(id=index_id, object="index")


lambda_handler = build_handler(app)
