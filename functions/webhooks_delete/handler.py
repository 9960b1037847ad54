"""DELETE /v1/webhooks/{webhook_id}: the webhook and its signing secret."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.schemas import Deleted
from parley.services import webhooks

app = make_app()


@app.delete("/v1/webhooks/<webhook_id>")
@requires("webhooks:DeleteWebhook")
def delete_webhook(webhook_id: str) -> Deleted:
    webhooks.delete(principal(app), webhook_id)
    return Deleted(id=webhook_id, object="webhook")


lambda_handler = build_handler(app)
