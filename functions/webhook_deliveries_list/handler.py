"""GET /v1/webhooks/{webhook_id}/deliveries: the delivery log, newest first, by status."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.webhooks import Delivery, DeliveryStatus
from parley.services import webhooks

app = make_app()


@app.get("/v1/webhooks/<webhook_id>/deliveries")
@requires("webhooks:ListWebhookDeliveries")
def list_webhook_deliveries(
    webhook_id: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
    status: Annotated[DeliveryStatus | None, Query()] = None,
) -> Page[Delivery]:
    at = position(cursor, webhooks.DELIVERY_PAGES)
    data, after = webhooks.list_deliveries(principal(app), webhook_id, limit, at, status)
    return page(data, after, webhooks.DELIVERY_PAGES)


lambda_handler = build_handler(app)
