"""POST /v1/webhooks/{webhook_id}/test: a `webhook.test` event to the endpoint, attempted now
through the delivery path (signed, logged); answers the delivery with its attempt."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.webhooks import DeliveryDetail
from parley.services import webhooks

app = make_app()


@app.post("/v1/webhooks/<webhook_id>/test")
@requires("webhooks:TestWebhook")
def test_webhook(webhook_id: str) -> DeliveryDetail:
    return webhooks.send_test(principal(app), webhook_id)


lambda_handler = build_handler(app)
