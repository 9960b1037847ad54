"""POST /v1/api-keys/{key_id}/rotate: a new secret for the key; the old one stops working.

Each call rotates (a retry after a lost answer rotates again, leaving one secret that works):
the HTTP-level idempotency store is not used, since it would keep the secret."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, idempotent_in_service, make_app, principal, requires
from parley.domain.keys import PROJECT_ID_PATTERN, ApiKeyWithSecret
from parley.services import keys

app = make_app()


ROTATED = {
    200: {
        "description": "The key, with its new secret (shown once).",
        "content": {"application/json": {"model": ApiKeyWithSecret}},
    }
}


@app.post("/v1/api-keys/<key_id>/rotate", responses=ROTATED)
@requires("api_keys:RotateApiKey")
@idempotent_in_service
def rotate_api_key(
    key_id: str, project_id: Annotated[str | None, Query(pattern=PROJECT_ID_PATTERN)] = None
) -> Response[str]:
    rotated = keys.rotate_key(principal(app), key_id, project_id)
    return Response(200, "application/json", rotated.model_dump_json(), headers={"Cache-Control": "no-store"})


lambda_handler = build_handler(app)
