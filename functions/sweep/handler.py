"""Scheduled (every 5 minutes, EventBridge): fold parked usage records into the counters and write
back replies a dead invocation left pending (parley.services.sweep)."""

from typing import Any

from parley.api.observability import logger, metrics
from parley.services.sweep import sweep


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    swept = sweep()
    logger().info("swept", extra={"folded": swept.folded, "interrupted": swept.interrupted})
    m = metrics()
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415

    m.add_metric(name="UsageFolded", unit=MetricUnit.Count, value=swept.folded)
    m.add_metric(name="RepliesInterrupted", unit=MetricUnit.Count, value=swept.interrupted)
    m.flush_metrics()
    return {"folded": swept.folded, "interrupted": swept.interrupted}
