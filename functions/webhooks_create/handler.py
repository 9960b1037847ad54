"""POST /v1/webhooks: a new webhook; its signing secret is in this response only.

The HTTP-level idempotency store is not used (it would keep the secret): with an
Idempotency-Key the service makes sure a retry never creates a second webhook."""

from aws_lambda_powertools.event_handler import Response

from parley.api.app import build_handler, idempotency_key, idempotent_in_service, make_app, principal, requires
from parley.domain.webhooks import WebhookCreate, WebhookWithSecret
from parley.services import webhooks

app = make_app()

CREATED = {
    201: {
        "description": "The webhook, with its signing secret (shown once).",
        "content": {"application/json": {"model": WebhookWithSecret}},
    }
}


@app.post("/v1/webhooks", responses=CREATED)
@requires("webhooks:CreateWebhook")
@idempotent_in_service
def create_webhook(body: WebhookCreate) -> Response[str]:
    created = webhooks.create(principal(app), body, idempotency_key(app))
    return Response(201, "application/json", created.model_dump_json(), headers={"Cache-Control": "no-store"})


lambda_handler = build_handler(app)
