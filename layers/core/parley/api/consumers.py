"""SQS consumers' side of the api layer: a batch in, ReportBatchItemFailures out.

Each record is processed on its own; one that fails (Parley's storage failed, the message is
malformed) is logged and reported in `batchItemFailures`, so SQS delivers it again and, after
the queue's maximum receives, parks it in the queue's dead-letter queue. Nothing is dropped
silently. What a consumer decides about the message's content (an endpoint answered 500: retry
later) is not a failure of the record; the consumer handles it and returns normally.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from parley.api.observability import log_internal_error, logger, metrics


def process_batch(event: Mapping[str, Any], process: Callable[[str], object], *, what: str) -> dict[str, Any]:
    """Run `process` on each record's body; the records that raised, as SQS wants them back."""
    failures: list[dict[str, str]] = []
    done = 0
    for record in event.get("Records", []):
        message_id = str(record.get("messageId", ""))
        try:
            outcome = process(str(record["body"]))
        except Exception as error:  # noqa: BLE001 - reported for redelivery, then the DLQ: never dropped
            log_internal_error(error, message_id, f"{what}: a message failed and will be delivered again")
            failures.append({"itemIdentifier": message_id})
            continue
        done += 1
        logger().debug(f"{what}: processed", extra={"message_id": message_id, "outcome": str(outcome)})
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415

    m = metrics()
    m.add_metric(name=f"{what}Processed", unit=MetricUnit.Count, value=done)
    m.add_metric(name=f"{what}Failed", unit=MetricUnit.Count, value=len(failures))
    m.flush_metrics()
    return {"batchItemFailures": failures}
