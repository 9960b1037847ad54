"""SQS consumer of the webhook deliveries queue: one scheduled attempt per message, signed and
POSTed to the endpoint, recorded, and retried on its schedule (parley.services.webhooks.deliver)."""

import json
from typing import Any

from parley.api.consumers import process_batch
from parley.services import webhooks


def _deliver(body: str) -> str:
    return webhooks.deliver(json.loads(body))


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_batch(event, _deliver, what="WebhookDeliveries")
