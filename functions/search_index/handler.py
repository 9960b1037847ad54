"""DynamoDB Streams (conversations, messages) -> the message search index
(parley.services.search). Partial failures are reported (ReportBatchItemFailures): Lambda
redelivers from the first record that was not indexed."""

from typing import Any

from parley.api.observability import logger
from parley.services import search


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    records = list(event.get("Records", []))
    indexed = search.index_records(records)
    logger().info(
        "messages indexed",
        extra={"records": len(records), "puts": indexed.puts, "deletes": indexed.deletes, "failed": indexed.failed},
    )
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in indexed.failed]}
