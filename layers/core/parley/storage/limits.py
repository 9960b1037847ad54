"""Rate-limit windows and monthly spend, in the `usage` table.

    pk = {project}#limits              sk = {YYYY-MM-DDTHH:MM}      one-minute window (expires)
        req, tok: the project's counts; k.{key id}.req, k.{key id}.tok: a limited key's counts
    pk = {project}#spend#{YYYY-MM}     sk = {scope}#{shard}         cost in nano-dollars (ADD)
        scope = project | key#{key id} | user#{end user}; written by metering (storage.usage)

A request takes its window with one conditional UpdateItem: the ADD happens only if no counter
would pass its limit, so a refused request counts nothing, and the counts it returns (or, when
refused, the counts that refused it) give the x-ratelimit-* headers. Only keys with limits of
their own get counters in the window item, which bounds its size by the project's limited keys
in use within one minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from parley.storage.base import TableRepository, backoff, error_code, unavailable, write_with_retry
from parley.storage.items import from_item
from parley.storage.usage import COUNTER_SHARDS as SPEND_SHARDS  # metering writes spend over these


@dataclass(frozen=True)
class Take:
    counter: str  # attribute name in the window item
    amount: int
    limit: int | None  # None: counted (for the headers) but not limited


@dataclass(frozen=True)
class Taken:
    admitted: bool
    counts: dict[str, int]  # after the ADD when admitted; what refused it otherwise


class LimitsRepository(TableRepository):
    logical_table = "usage"

    def take(self, project_id: str, window: str, takes: list[Take], expires_at: int) -> Taken:
        names: dict[str, str] = {}
        values: dict[str, Any] = {":exp": {"N": str(expires_at)}}
        adds, conditions = [], []
        for i, take in enumerate(takes):
            names[f"#c{i}"] = take.counter
            values[f":a{i}"] = {"N": str(take.amount)}
            adds.append(f"#c{i} :a{i}")
            if take.limit is not None:
                values[f":m{i}"] = {"N": str(take.limit - take.amount)}
                conditions.append(f"(attribute_not_exists(#c{i}) OR #c{i} <= :m{i})")
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"pk": {"S": f"{project_id}#limits"}, "sk": {"S": window}},
            "UpdateExpression": "ADD " + ", ".join(adds) + " SET expires_at = :exp",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
        }
        if conditions:
            request["ConditionExpression"] = " AND ".join(conditions)
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            found = write_with_retry(lambda: self.client.update_item(**request), what="the rate limit window")
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
            return Taken(False, _counts(dict(error.response.get("Item") or {})))  # type: ignore[call-overload]
        return Taken(True, _counts(found.get("Attributes") or {}))

    def spend(self, project_id: str, month: str, scopes: list[str]) -> dict[str, int]:
        """Nano-dollars spent this month per scope (the sum of its shards): one BatchGetItem."""
        pk = f"{project_id}#spend#{month}"
        keys = [{"pk": {"S": pk}, "sk": {"S": f"{scope}#{shard}"}} for scope in scopes for shard in range(SPEND_SHARDS)]
        totals = dict.fromkeys(scopes, 0)
        pending: dict[str, Any] = {self.table: {"Keys": keys, "ProjectionExpression": "sk, cost_nanos"}}
        for attempt in range(6):
            if attempt:
                time.sleep(backoff(attempt))
            answer = self.client.batch_get_item(RequestItems=pending)
            for item in answer.get("Responses", {}).get(self.table, []):
                scope = item["sk"]["S"].rsplit("#", 1)[0]
                totals[scope] = totals.get(scope, 0) + int(item.get("cost_nanos", {}).get("N", "0"))
            pending = answer.get("UnprocessedKeys") or {}
            if not pending:
                return totals
        raise unavailable("the spend read")  # keys left unprocessed: DynamoDB is throttling


def _counts(item: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in from_item(item).items() if isinstance(v, int | float) and k != "expires_at"}
