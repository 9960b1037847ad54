"""PATCH /v1/webhooks/{webhook_id}: url, event_types, enabled, description."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.webhooks import Webhook, WebhookUpdate
from parley.services import webhooks

app = make_app()


@app.patch("/v1/webhooks/<webhook_id>")
@requires("webhooks:UpdateWebhook")
def update_webhook(webhook_id: str, body: WebhookUpdate) -> Webhook:
    return webhooks.update(principal(app), webhook_id, body)


lambda_handler = build_handler(app)
