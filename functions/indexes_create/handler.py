"""POST /v1/indexes: a knowledge index (its embedding model is called once to learn its dimension)."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.indexes import Index, IndexCreate
from parley.services import indexes

app = make_app()


@app.post("/v1/indexes", status_code=201)
@requires("indexes:CreateIndex")
def create_index(body: IndexCreate) -> Index:
    return indexes.create(principal(app), body)


lambda_handler = build_handler(app)
