"""SQS consumer of the webhook events queue (EventBridge's rule puts every Parley event there):
each event becomes one delivery per webhook that wants it (parley.services.webhooks.fan_out)."""

from typing import Any

from parley.api.consumers import process_batch
from parley.services import webhooks


def _fan_out(body: str) -> int:
    return len(webhooks.fan_out(webhooks.event_of(body)))


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_batch(event, _fan_out, what="WebhookEvents")
