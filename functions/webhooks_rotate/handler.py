"""POST /v1/webhooks/{webhook_id}/rotate: a new signing secret (shown once); the previous one
keeps signing beside it for `grace_seconds` (24 h by default).

Each call rotates (a retry after a lost answer rotates again): the HTTP-level idempotency store
is not used, since it would keep the secret."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, idempotent_in_service, make_app, principal, requires
from parley.domain.webhooks import MAX_GRACE_SECONDS, WebhookWithSecret
from parley.services import webhooks

app = make_app()

ROTATED = {
    200: {
        "description": "The webhook, with its new signing secret (shown once).",
        "content": {"application/json": {"model": WebhookWithSecret}},
    }
}


@app.post("/v1/webhooks/<webhook_id>/rotate", responses=ROTATED)
@requires("webhooks:RotateWebhookSecret")
@idempotent_in_service
def rotate_webhook_secret(
    webhook_id: str, grace_seconds: Annotated[int | None, Query(ge=0, le=MAX_GRACE_SECONDS)] = None
) -> Response[str]:
    rotated = webhooks.rotate(principal(app), webhook_id, grace_seconds)
    return Response(200, "application/json", rotated.model_dump_json(), headers={"Cache-Control": "no-store"})


lambda_handler = build_handler(app)
