"""Metering counters and audit events in the `usage` table.

    pk = {project}#usage#{YYYY-MM-DD}   sk = {model}#{key_id}        daily counters (ADD)
    pk = {project}#audit                sk = {ISO time}#{evt id}      audit events, expiring
    pk = {project}#folded               sk = {record id}              parked records already counted

Costs are counted in nano-dollars (integers), so sums are exact.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from botocore.exceptions import ClientError

from parley.storage.base import (
    REASON_CONDITION,
    TableRepository,
    cancellation_reasons,
    error_code,
    write_with_retry,
)
from parley.storage.items import from_item, to_item

AUDIT_RETENTION_DAYS = 90


class UsageRepository(TableRepository):
    logical_table = "usage"

    def add(self, project_id: str, day: str, counters: dict[str, int], labels: dict[str, str]) -> None:
        """Add to the day's counters with one atomic UpdateItem ADD: no transaction, so concurrent
        calls on the same hot item serialise in DynamoDB instead of cancelling each other."""
        write_with_retry(
            lambda: self.client.update_item(**self._add_request(project_id, day, counters, labels)),
            what="the usage counters",
        )

    def _add_request(
        self, project_id: str, day: str, counters: dict[str, int], labels: dict[str, str]
    ) -> dict[str, Any]:
        names = {f"#c{i}": name for i, name in enumerate(counters)}
        values: dict[str, Any] = {f":c{i}": {"N": str(v)} for i, v in enumerate(counters.values())}
        sets = []
        for i, (name, value) in enumerate(labels.items()):
            names[f"#l{i}"] = name
            values[f":l{i}"] = {"S": value}
            sets.append(f"#l{i} = :l{i}")
        update = "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(counters)))
        if sets:
            update += " SET " + ", ".join(sets)
        return {
            "TableName": self.table,
            "Key": {"pk": {"S": f"{project_id}#usage#{day}"}, "sk": {"S": f"{labels['model']}#{labels['key_id']}"}},
            "UpdateExpression": update,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def put_audit(self, project_id: str, audit: dict[str, Any]) -> None:
        """Store an audit event (its key includes its id, so a retried put writes the same item)."""
        item = {"pk": {"S": f"{project_id}#audit"}, "sk": {"S": f"{audit['time']}#{audit['id']}"}, **to_item(audit)}
        write_with_retry(lambda: self.client.put_item(TableName=self.table, Item=item), what="the audit event")

    def fold(self, project_id: str, day: str, counters: dict[str, int], labels: dict[str, str], record_id: str) -> bool:
        """Add a parked record's counters exactly once: the counter update and a `folded` marker
        (keyed by the record id, expiring with the audit events) go in one transaction whose
        ClientRequestToken is the record id. False when it was folded before (a redelivery)."""
        add = self._add_request(project_id, day, counters, labels)
        marker = {
            "pk": {"S": f"{project_id}#folded"},
            "sk": {"S": record_id},
            "expires_at": {"N": str(int(time.time()) + AUDIT_RETENTION_DAYS * 86400)},
        }
        try:
            write_with_retry(
                lambda: self.client.transact_write_items(
                    TransactItems=[
                        {"Update": add},  # type: ignore[typeddict-item]
                        {
                            "Put": {
                                "TableName": self.table,
                                "Item": marker,
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                    ],
                    ClientRequestToken=hashlib.sha256(record_id.encode()).hexdigest()[:36],
                ),
                what="the parked usage",
            )
        except ClientError as error:
            if error_code(error) == "TransactionCanceledException" and REASON_CONDITION in cancellation_reasons(error):
                return False
            raise
        return True

    def day(self, project_id: str, day: str) -> list[dict[str, Any]]:
        """Every counter of one day (a handful of items: one per model and key used that day)."""
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"{project_id}#usage#{day}"}},
        }
        while True:
            page = self.client.query(**request)
            items.extend(from_item(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def audit_page(self, project_id: str, limit: int, before: str | None) -> tuple[list[dict[str, Any]], str | None]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"{project_id}#audit"}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if before is not None:
            request["ExclusiveStartKey"] = {"pk": {"S": f"{project_id}#audit"}, "sk": {"S": before}}
        page = self.client.query(**request)
        events = [from_item(i) for i in page.get("Items", [])]
        for event in events:
            for key in ("pk", "sk", "expires_at"):
                event.pop(key, None)
        last = page.get("LastEvaluatedKey")
        return events, (str(last["sk"]["S"]) if last else None)
