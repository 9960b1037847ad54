"""GET /v1/webhooks/{webhook_id} (never its secret)."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.webhooks import Webhook
from parley.services import webhooks

app = make_app()


@app.get("/v1/webhooks/<webhook_id>")
@requires("webhooks:GetWebhook")
def get_webhook(webhook_id: str) -> Webhook:
    return webhooks.get(principal(app), webhook_id)


lambda_handler = build_handler(app)
