"""API keys and projects.

A key is two items written together in one transaction:
- the authorizer's item in the `keys` table, keyed by the SHA-256 of the secret (never the secret):
  what one GetItem needs to turn a bearer token into a principal;
- the listable record in the `chats` table (pk = {project}#api_keys, sk = key id): what the API
  shows, read with consistent reads, so a key is visible the moment it exists.
Rotation replaces the first (old hash deleted, new hash put) and updates the second in the same
transaction; revocation deletes both, so the old secret finds nothing from then on.

Projects live in the `chats` table too, by organization: pk = org#{org}#projects, sk = project id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from parley.domain.errors import Conflict
from parley.domain.keys import ApiKeyStored, ProjectStored
from parley.storage.base import (
    REASON_CONDITION,
    TableRepository,
    cancellation_reasons,
    error_code,
    write_with_retry,
)
from parley.storage.items import from_item, to_item, to_value
from parley.storage.resources import ResourceRepository, ScopedRepository

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKeyRecord:
    """The authorizer's item (keys table)."""

    key_id: str
    key_hash: str
    org_id: str
    project_id: str
    permissions: tuple[str, ...]
    name: str
    prefix: str  # the first characters of the secret, to recognise a key in listings
    created_at: str
    revoked_at: str | None = None
    expires_at: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": self.key_hash},
            "key_id": {"S": self.key_id},
            "org_id": {"S": self.org_id},
            "project_id": {"S": self.project_id},
            "permissions": {"L": [{"S": p} for p in self.permissions]},
            "name": {"S": self.name},
            "prefix": {"S": self.prefix},
            "created_at": {"S": self.created_at},
        }
        if self.expires_at is not None:
            item["expires_at"] = {"S": self.expires_at}
        if self.limits:
            item["limits"] = to_value(self.limits)
        return item

    @classmethod
    def of(cls, item: dict[str, Any]) -> ApiKeyRecord:
        limits = from_item({"limits": item["limits"]})["limits"] if "limits" in item else {}
        return cls(
            key_id=item["key_id"]["S"],
            key_hash=item["pk"]["S"],
            org_id=item["org_id"]["S"],
            project_id=item["project_id"]["S"],
            permissions=tuple(p["S"] for p in item.get("permissions", {}).get("L", [])),
            name=item.get("name", {}).get("S", ""),
            prefix=item.get("prefix", {}).get("S", ""),
            created_at=item["created_at"]["S"],
            revoked_at=item.get("revoked_at", {}).get("S"),
            expires_at=item.get("expires_at", {}).get("S"),
            limits=limits,
        )


def _stored_item(record: ApiKeyStored) -> dict[str, Any]:
    return {"pk": {"S": f"{record.project_id}#api_keys"}, "sk": {"S": record.id}, **to_item(record.stored())}


class KeyRepository(TableRepository):
    logical_table = "keys"

    def __init__(self, client: Any = None, table: str | None = None) -> None:
        super().__init__(client, table)
        self.records: ResourceRepository[ApiKeyStored] = ResourceRepository("api_keys", ApiKeyStored, client)

    @property
    def records_table(self) -> str:
        return self.records.table

    def put(
        self, record: ApiKeyRecord, listed: ApiKeyStored | None = None, marker: tuple[str, str] | None = None
    ) -> None:
        """A new key: its authorizer item and (unless a bare legacy item) its listed record, together;
        with `marker` (an Idempotency-Key's hash, the request's fingerprint) also the marker that
        makes a retry find this key instead of making another."""
        if listed is None:
            self.client.put_item(
                TableName=self.table, Item=record.item(), ConditionExpression="attribute_not_exists(pk)"
            )
            return
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": record.item(),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self.records_table,
                    "Item": _stored_item(listed),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        if marker is not None:
            item = {
                **self._marker_key(listed.project_id, marker[0]),
                "key_id": {"S": listed.id},
                "fingerprint": {"S": marker[1]},
            }
            items.append(
                {
                    "Put": {
                        "TableName": self.records_table,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        self._transact(items, what="the API key")

    @staticmethod
    def _marker_key(project_id: str, marker: str) -> dict[str, Any]:
        return {"pk": {"S": f"{project_id}#api_key_requests"}, "sk": {"S": marker}}

    def by_idempotency(self, project_id: str, marker: str) -> tuple[str, str] | None:
        """(key id, request fingerprint) of the key an Idempotency-Key made, if any."""
        found = self.client.get_item(
            TableName=self.records_table, Key=self._marker_key(project_id, marker), ConsistentRead=True
        ).get("Item")
        return (found["key_id"]["S"], found["fingerprint"]["S"]) if found else None

    def put_listed(self, listed: ApiKeyStored) -> bool:
        """The listed record alone, if it does not exist yet (a key issued before keys were listed)."""
        try:
            self.client.put_item(
                TableName=self.records_table, Item=_stored_item(listed), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        found = self.client.get_item(TableName=self.table, Key={"pk": {"S": key_hash}}, ConsistentRead=True)
        item = found.get("Item")
        return ApiKeyRecord.of(item) if item is not None else None

    def replace(self, auth: ApiKeyRecord, listed: ApiKeyStored, expected_version: int) -> None:
        """New name or limits: both items, the listed one conditioned on its version."""
        self._transact(
            [
                {"Put": {"TableName": self.table, "Item": auth.item(), "ConditionExpression": "attribute_exists(pk)"}},
                self._versioned_put(listed, expected_version),
            ],
            what="the API key",
        )

    def rotate(self, old_hash: str, auth: ApiKeyRecord, listed: ApiKeyStored, expected_version: int) -> None:
        self._transact(
            [
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": {"pk": {"S": old_hash}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": auth.item(),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                self._versioned_put(listed, expected_version),
            ],
            what="the API key",
        )

    def revoke(self, listed: ApiKeyStored) -> None:
        """Both items go: the secret finds nothing from now on (the authorizer's cache aside)."""
        self._transact(
            [
                {"Delete": {"TableName": self.table, "Key": {"pk": {"S": listed.key_hash}}}},
                {
                    "Delete": {
                        "TableName": self.records_table,
                        "Key": {"pk": {"S": f"{listed.project_id}#api_keys"}, "sk": {"S": listed.id}},
                        "ConditionExpression": "#v = :v",
                        "ExpressionAttributeNames": {"#v": "version"},
                        "ExpressionAttributeValues": {":v": to_value(listed.version)},
                    }
                },
            ],
            what="the API key",
        )

    def touch(self, project_id: str, key_id: str, now: str, stale_before: str) -> bool:
        """Set last_used_at when it is older than `stale_before` (one write per key per interval)."""
        try:
            self.client.update_item(
                TableName=self.records_table,
                Key={"pk": {"S": f"{project_id}#api_keys"}, "sk": {"S": key_id}},
                UpdateExpression="SET last_used_at = :now",
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(last_used_at) OR last_used_at < :stale)"
                ),
                ExpressionAttributeValues={":now": {"S": now}, ":stale": {"S": stale_before}},
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _versioned_put(self, listed: ApiKeyStored, expected_version: int) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.records_table,
                "Item": _stored_item(listed),
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":v": to_value(expected_version)},
            }
        }

    def _transact(self, items: list[dict[str, Any]], *, what: str) -> None:
        try:
            write_with_retry(lambda: self.client.transact_write_items(TransactItems=items), what=what)  # type: ignore[arg-type]
        except ClientError as error:
            if REASON_CONDITION in cancellation_reasons(error):
                raise Conflict(
                    f"{what[0].upper()}{what[1:]} changed while this request ran; read it again and retry.",
                    code="concurrent_update",
                ) from None
            raise


class ProjectRepository(ScopedRepository[ProjectStored]):
    """An organization's projects: pk = org#{org}#projects, sk = the project id (oldest first)."""

    newest_first = False

    def __init__(self, client: DynamoDBClient | None = None, table: str | None = None) -> None:
        super().__init__("project", ProjectStored, client, table)

    def partition(self, scope: str) -> str:
        return f"org#{scope}#projects"

    def scope_of(self, record: ProjectStored) -> str:
        return record.org_id
