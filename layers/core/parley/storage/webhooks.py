"""Webhooks and their deliveries, in the `chats` table.

    pk = {project}#webhooks                          sk = {webhook_id}    the webhook
    pk = {project}#webhook_requests                  sk = {marker}        an Idempotency-Key's webhook
    pk = {project}#{webhook_id}#webhook_deliveries   sk = {delivery_id}   its deliveries, newest first

The signing secrets live in Secrets Manager, one secret per webhook (`WebhookSecret`, a JSON
document: the current secret and, during a rotation's grace, the previous one and its expiry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from parley.domain.errors import Conflict
from parley.domain.webhooks import DeliveryRecord, DeliveryStatus, WebhookRecord
from parley.settings import get_settings
from parley.storage.base import REASON_CONDITION, cancellation_reasons, write_with_retry
from parley.storage.items import to_value
from parley.storage.resources import ResourceRepository, ScopedRepository

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_FILTERED_READS = 5  # queries one filtered page of deliveries may take (bounded per request)


class WebhookRepository(ResourceRepository[WebhookRecord]):
    def __init__(self, client: DynamoDBClient | None = None, table: str | None = None) -> None:
        super().__init__("webhooks", WebhookRecord, client, table)

    def _marker_key(self, project_id: str, marker: str) -> dict[str, Any]:
        return {"pk": {"S": f"{project_id}#webhook_requests"}, "sk": {"S": marker}}

    def create(self, record: WebhookRecord, marker: tuple[str, str] | None = None) -> None:
        """A new webhook; with `marker` (an Idempotency-Key's hash, the request's fingerprint) also
        the marker a retry finds it by, in the same transaction. Conflict if the marker exists."""
        if marker is None:
            self.put_new(record)
            return
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": self._item(record),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        **self._marker_key(record.project_id, marker[0]),
                        "webhook_id": {"S": record.id},
                        "fingerprint": {"S": marker[1]},
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        try:
            write_with_retry(lambda: self.client.transact_write_items(TransactItems=items), what="the webhook")  # type: ignore[arg-type]
        except ClientError as error:
            if REASON_CONDITION in cancellation_reasons(error):
                raise Conflict("This Idempotency-Key created a webhook already.", code="already_exists") from None
            raise

    def by_idempotency(self, project_id: str, marker: str) -> tuple[str, str] | None:
        """(webhook id, request fingerprint) of the webhook an Idempotency-Key made, if any."""
        found = self.client.get_item(
            TableName=self.table, Key=self._marker_key(project_id, marker), ConsistentRead=True
        ).get("Item")
        return (found["webhook_id"]["S"], found["fingerprint"]["S"]) if found else None

    def all_of(self, project_id: str) -> list[WebhookRecord]:
        """Every webhook of a project (a query per 100)."""
        found: list[WebhookRecord] = []
        after: str | None = None
        while True:
            records, after = self.page(project_id, 100, after)
            found += records
            if after is None:
                return found

    def _update(
        self, project_id: str, webhook_id: str, expression: str, condition: str, values: dict[str, Any]
    ) -> bool:
        """An UpdateItem that moves the version too (a PATCH that read before it then conflicts);
        False when its condition failed (someone else did it first, or the webhook is gone)."""
        key = self._key(project_id, webhook_id)
        return self._conditional(
            lambda: self.client.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression=f"{expression} ADD version :one",
                ConditionExpression=f"attribute_exists(pk) AND ({condition})",
                ExpressionAttributeValues={":one": {"N": "1"}, **{k: to_value(v) for k, v in values.items()}},
            )
        )

    def mark_failing(self, project_id: str, webhook_id: str, since: str) -> bool:
        """failing_since, set by the first failed attempt after a success (one write per streak)."""
        return self._update(
            project_id,
            webhook_id,
            "SET failing_since = :since",
            "attribute_not_exists(failing_since)",
            {":since": since},
        )

    def mark_succeeding(self, project_id: str, webhook_id: str) -> bool:
        return self._update(project_id, webhook_id, "REMOVE failing_since", "attribute_exists(failing_since)", {})

    def disable(self, project_id: str, webhook_id: str, reason: str, at: str) -> bool:
        """Disabled with its reason; False when it was disabled (or deleted) already."""
        return self._update(
            project_id,
            webhook_id,
            "SET enabled = :no, disabled_reason = :reason, disabled_at = :at, disabled_announced = :no,"
            " updated_at = :at",
            "enabled = :yes",
            {":no": False, ":yes": True, ":reason": reason, ":at": at},
        )

    def mark_announced(self, project_id: str, webhook_id: str, disabled_at: str) -> bool:
        """The disable of `disabled_at` was announced (False: re-enabled or disabled again since)."""
        return self._update(
            project_id,
            webhook_id,
            "SET disabled_announced = :yes",
            "disabled_at = :at",
            {":yes": True, ":at": disabled_at},
        )


class DeliveryRepository(ScopedRepository[DeliveryRecord]):
    """A webhook's deliveries; the scope is `{project}#{webhook}`. Ids carry the event's time, so
    a page is newest first."""

    def __init__(self, client: DynamoDBClient | None = None, table: str | None = None) -> None:
        super().__init__("webhook delivery", DeliveryRecord, client, table)

    @staticmethod
    def scope(project_id: str, webhook_id: str) -> str:
        return f"{project_id}#{webhook_id}"

    def partition(self, scope: str) -> str:
        return f"{scope}#webhook_deliveries"

    def scope_of(self, record: DeliveryRecord) -> str:
        return self.scope(record.project_id, record.webhook_id)

    def filtered_page(
        self, scope: str, limit: int, after: str | None, status: DeliveryStatus | None
    ) -> tuple[list[DeliveryRecord], str | None]:
        """A page of deliveries in one status: DynamoDB filters after it reads, so a page takes
        up to MAX_FILTERED_READS queries and may hold fewer than `limit` (the cursor goes on)."""
        if status is None:
            return self.page(scope, limit, after)
        found: list[DeliveryRecord] = []
        for _ in range(MAX_FILTERED_READS):
            request: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk",
                "FilterExpression": "#s = :s",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":pk": {"S": self.partition(scope)}, ":s": {"S": status}},
                "ScanIndexForward": False,
                "Limit": max(limit - len(found), 1) * 4,
            }
            if after is not None:
                request["ExclusiveStartKey"] = self._key(scope, after)
            answer = self.client.query(**request)
            for item in answer.get("Items", []):
                found.append(self._record(item))
                if len(found) == limit:
                    return found, found[-1].id
            last = answer.get("LastEvaluatedKey")
            if not last:
                return found, None
            after = str(last["sk"]["S"])
        return found, after

    def put_if_absent(self, record: DeliveryRecord) -> DeliveryRecord:
        """The delivery as stored: this one, or the one stored before under its id."""
        if self.insert(record):
            return record
        existing = self.get(self.scope_of(record), record.id)
        if existing is None:  # inserted and deleted in between: nothing deletes deliveries
            raise Conflict(f"The delivery {record.id} vanished while it was written.", code="concurrent_update")
        return existing


# --- the signing secrets -------------------------------------------------------------------------

_FORMAT = "parley.webhook-secret/1"


@dataclass(frozen=True)
class WebhookSecret:
    """What a webhook's secret holds. Its repr shows no value."""

    current: str = field(repr=False)
    rotated_at: str | None = None
    previous: str | None = field(default=None, repr=False)
    previous_until: str | None = None

    def signing(self, now: str) -> list[str]:
        """The secrets that sign a delivery made at `now`: the current one, and the previous one
        while its grace lasts."""
        keep = self.previous is not None and self.previous_until is not None and now < self.previous_until
        return [self.current, *([self.previous] if keep and self.previous else [])]

    def encode(self) -> str:
        return json.dumps(
            {
                "format": _FORMAT,
                "current": self.current,
                "rotated_at": self.rotated_at,
                "previous": self.previous,
                "previous_until": self.previous_until,
            }
        )

    @classmethod
    def decode(cls, value: str) -> WebhookSecret:
        document = json.loads(value)
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            raise ValueError("not a webhook secret")
        return cls(
            current=str(document["current"]),
            rotated_at=document.get("rotated_at"),
            previous=document.get("previous"),
            previous_until=document.get("previous_until"),
        )


def secret_name(project_id: str, webhook_id: str) -> str:
    return f"parley/{get_settings().stage}/{project_id}/webhooks/{webhook_id}"
