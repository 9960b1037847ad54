"""Metering counters and audit events in the `usage` table.

    pk = {project}#usage#{YYYY-MM-DD}   sk = {model}#{key_id}        daily counters (ADD)
    pk = {project}#audit                sk = {ISO time}#{evt id}      audit events, expiring

Costs are counted in nano-dollars (integers), so sums are exact.
"""

from __future__ import annotations

from typing import Any

from parley.storage.base import TableRepository
from parley.storage.items import from_item, to_item

AUDIT_RETENTION_DAYS = 90


class UsageRepository(TableRepository):
    logical_table = "usage"

    def record(
        self, project_id: str, day: str, counters: dict[str, int], labels: dict[str, str], audit: dict[str, Any]
    ) -> None:
        """Add to the day's counters and store the audit event, in one transaction."""
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
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": {
                            "pk": {"S": f"{project_id}#usage#{day}"},
                            "sk": {"S": f"{labels['model']}#{labels['key_id']}"},
                        },
                        "UpdateExpression": update,
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {
                            "pk": {"S": f"{project_id}#audit"},
                            "sk": {"S": f"{audit['time']}#{audit['id']}"},
                            **to_item(audit),
                        },
                    }
                },
            ]
        )

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
