"""POST /v1/api-keys: a new API key; its secret is in this response only.

The HTTP-level idempotency store is not used (it would keep the secret): with an
Idempotency-Key the service makes sure a retry never creates a second key."""

from aws_lambda_powertools.event_handler import Response

from parley.api.app import build_handler, idempotency_key, idempotent_in_service, make_app, principal, requires
from parley.domain.keys import ApiKeyCreate, ApiKeyWithSecret
from parley.services import keys

app = make_app()


# The secret is in this response only: the response says so to caches (Cache-Control: no-store).
CREATED = {
    201: {
        "description": "The key, with its secret (shown once).",
        "content": {"application/json": {"model": ApiKeyWithSecret}},
    }
}


@app.post("/v1/api-keys", responses=CREATED)
@requires("api_keys:CreateApiKey")
@idempotent_in_service
def create_api_key(body: ApiKeyCreate) -> Response[str]:
    created = keys.create_key(principal(app), body, idempotency_key(app))
    return Response(201, "application/json", created.model_dump_json(), headers={"Cache-Control": "no-store"})


lambda_handler = build_handler(app)
