"""DynamoDB Streams (conversations, messages) -> Parley's events on EventBridge
(parley.services.events). Partial failures are reported (ReportBatchItemFailures): Lambda
redelivers from the first record whose events were not put."""

from typing import Any

from parley.api.observability import logger, metrics
from parley.services import events


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    records = list(event.get("Records", []))
    emitted = events.emit(records)
    logger().info(
        "events emitted", extra={"records": len(records), "events": len(emitted.events), "failed": emitted.failed}
    )
    m = metrics()
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415

    m.add_metric(name="EventsEmitted", unit=MetricUnit.Count, value=len(emitted.events))
    m.flush_metrics()
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in emitted.failed]}
