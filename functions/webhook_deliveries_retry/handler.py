"""POST /v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry: a new attempt now, whatever
the delivery's status; answers the delivery with its attempts."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.webhooks import DeliveryDetail
from parley.services import webhooks

app = make_app()


@app.post("/v1/webhooks/<webhook_id>/deliveries/<delivery_id>/retry")
@requires("webhooks:RetryWebhookDelivery")
def retry_webhook_delivery(webhook_id: str, delivery_id: str) -> DeliveryDetail:
    return webhooks.retry(principal(app), webhook_id, delivery_id)


lambda_handler = build_handler(app)
