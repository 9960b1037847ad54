"""Metering counters and audit events in the `usage` table.

    pk = {project}#usage#{YYYY-MM-DD}   sk = {model}#{key_id}#{shard}  daily counters (ADD), sharded
    pk = {project}#audit                sk = {ISO time}#{evt id}       audit events, expiring
    pk = {project}#spend#{YYYY-MM}      sk = {scope}#{shard}           a priced call's cost, by project,
                                                                       key and end user (for budgets)

A call's counter ADD and its audit event are written in one transaction, and the audit event
is conditioned on not existing yet: it is the call's marker, so a resent or refolded call is
counted once. The counters of one model and key are spread over COUNTER_SHARDS items (by the
event id), so concurrent calls meet each other's transactions less often; readers sum them.

Costs are counted in nano-dollars (integers), so sums are exact.

Why one transaction and not an UpdateItem plus a Put issued side by side: an ADD is not
idempotent, and a DynamoDB condition sees only its own item, so the ADD cannot be conditioned on
the audit event (its marker). Split, a resend after a lost response (botocore's, or the sweep's
fold of a record whose outcome was unknown) would count twice, and an invocation dying between
the two writes would leave one without the other. A marker kept on the counter item itself
(a set of event ids) grows with the day's calls past the 400 KB item limit, and a bounded one
(slots, time buckets) is exact only within its window, which a parked record can outlive; the
spend items (budgets) would each need one too, making a priced call five writes. The
transaction is one call, exact, and sharded (COUNTER_SHARDS) so concurrent calls seldom meet;
the send path issues it at the same time as its reply's write
(parley.services.metering.start_record_call), so it adds no round trip there.
"""

from __future__ import annotations

import hashlib
from typing import Any

from botocore.exceptions import ClientError

from parley.storage.base import (
    REASON_CONDITION,
    TableRepository,
    cancellation_reasons,
    write_with_retry,
)
from parley.storage.items import from_item, to_item

AUDIT_RETENTION_DAYS = 90
COUNTER_SHARDS = 8
SPEND_ONLY_LABELS = frozenset({"user"})  # labels that name a spend scope, not a counter attribute


class UsageRepository(TableRepository):
    logical_table = "usage"

    def record(
        self, project_id: str, day: str, counters: dict[str, int], labels: dict[str, str], audit: dict[str, Any]
    ) -> bool:
        """Count one call and store its audit event, exactly once.

        One TransactWriteItems: an ADD to one of the day's counter shards, and the audit event's
        Put conditioned on `attribute_not_exists`, so the audit event is the call's idempotency
        marker. Whatever resends the request (botocore after a read timeout, our own retry of a
        conflict, the sweep folding a parked record whose first try did land) finds the event
        there, the transaction is cancelled for that condition and nothing is counted twice; the
        ClientRequestToken (from the event id) answers an in-window resend from the first commit
        on real DynamoDB. Conflicts are retried (`write_with_retry`); throttling raises
        `Unavailable`. Returns False when the audit event's condition found the call counted
        already (a resend the token answers from its first commit returns True)."""
        event_id = str(audit["id"])
        shard = int(hashlib.sha256(event_id.encode()).hexdigest()[:8], 16) % COUNTER_SHARDS
        item = {"pk": {"S": f"{project_id}#audit"}, "sk": {"S": f"{audit['time']}#{event_id}"}, **to_item(audit)}
        transaction: list[dict[str, Any]] = [
            {"Update": self._add_request(project_id, day, counters, labels, shard)},
            {"Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}},
            *self._add_spend(project_id, day[:7], counters.get("cost_nanos", 0), labels, shard),
        ]
        try:
            write_with_retry(
                lambda: self.client.transact_write_items(
                    TransactItems=transaction,  # type: ignore[arg-type]
                    ClientRequestToken=hashlib.sha256(event_id.encode()).hexdigest()[:36],
                ),
                what="the usage counters",
            )
        except ClientError as error:
            reasons = cancellation_reasons(error)
            if len(reasons) >= 2 and reasons[1] == REASON_CONDITION:
                return False
            raise
        return True

    def _add_spend(
        self, project_id: str, month: str, cost_nanos: int, labels: dict[str, str], shard: int
    ) -> list[dict[str, Any]]:
        """The call's cost added to the month's spend of its project, key and end user (budgets)."""
        if cost_nanos <= 0:
            return []
        scopes = ["project", f"key#{labels['key_id']}"]
        if labels.get("user"):
            scopes.append(f"user#{labels['user']}")
        return [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": {"pk": {"S": f"{project_id}#spend#{month}"}, "sk": {"S": f"{scope}#{shard}"}},
                    "UpdateExpression": "ADD cost_nanos :c",
                    "ExpressionAttributeValues": {":c": {"N": str(cost_nanos)}},
                }
            }
            for scope in scopes
        ]

    def _add_request(
        self, project_id: str, day: str, counters: dict[str, int], labels: dict[str, str], shard: int
    ) -> dict[str, Any]:
        names = {f"#c{i}": name for i, name in enumerate(counters)}
        values: dict[str, Any] = {f":c{i}": {"N": str(v)} for i, v in enumerate(counters.values())}
        sets = []
        for i, (name, value) in enumerate(labels.items()):
            if name in SPEND_ONLY_LABELS:
                continue
            names[f"#l{i}"] = name
            values[f":l{i}"] = {"S": value}
            sets.append(f"#l{i} = :l{i}")
        update = "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(counters)))
        if sets:
            update += " SET " + ", ".join(sets)
        return {
            "TableName": self.table,
            "Key": {
                "pk": {"S": f"{project_id}#usage#{day}"},
                "sk": {"S": f"{labels['model']}#{labels['key_id']}#{shard}"},
            },
            "UpdateExpression": update,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

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
