"""GET /v1/webhooks/{webhook_id}/deliveries/{delivery_id}: a delivery with its attempts."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.webhooks import DeliveryDetail
from parley.services import webhooks

app = make_app()


@app.get("/v1/webhooks/<webhook_id>/deliveries/<delivery_id>")
@requires("webhooks:GetWebhookDelivery")
def get_webhook_delivery(webhook_id: str, delivery_id: str) -> DeliveryDetail:
    return webhooks.get_delivery(principal(app), webhook_id, delivery_id)


lambda_handler = build_handler(app)
