"""Idempotency records in the `idempotency` table (key `id`, TTL `expiration`).

A record is claimed with a conditional put (`in_progress`), then completed with the response,
or released so the request can run again.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from parley.storage.base import TableRepository, error_code, write_with_retry
from parley.storage.items import from_item, to_item

TTL_SECONDS = 24 * 3600
IN_PROGRESS_SECONDS = 16 * 60  # longer than the longest invocation (15 min): a crashed claim frees itself


class IdempotencyStore(TableRepository):
    logical_table = "idempotency"

    def claim(self, record_id: str, request_hash: str, now: float | None = None) -> dict[str, Any] | None:
        """None when claimed for this request; else the existing record."""
        now = time.time() if now is None else now
        item = to_item(
            {
                "id": record_id,
                "status": "in_progress",
                "request_hash": request_hash,
                "expiration": int(now + IN_PROGRESS_SECONDS),
            }
        )
        try:
            write_with_retry(
                lambda: self.client.put_item(
                    TableName=self.table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(id) OR expiration < :now",
                    ExpressionAttributeValues={":now": {"N": str(int(now))}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ),
                what="the idempotency record",
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                old: Any = error.response.get("Item")
                if old:
                    return from_item(old)
                found = self.client.get_item(TableName=self.table, Key={"id": {"S": record_id}}, ConsistentRead=True)
                return from_item(found["Item"]) if "Item" in found else {"status": "in_progress"}
            raise
        return None

    def complete(self, record_id: str, request_hash: str, response: dict[str, Any], now: float | None = None) -> None:
        now = time.time() if now is None else now
        item = to_item(
            {
                "id": record_id,
                "status": "completed",
                "request_hash": request_hash,
                "response": response,
                "expiration": int(now + TTL_SECONDS),
            }
        )
        write_with_retry(lambda: self.client.put_item(TableName=self.table, Item=item), what="the idempotency record")

    def release(self, record_id: str) -> None:
        write_with_retry(
            lambda: self.client.delete_item(TableName=self.table, Key={"id": {"S": record_id}}),
            what="the idempotency record",
        )
