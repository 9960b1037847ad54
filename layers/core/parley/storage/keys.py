"""API keys: stored only as SHA-256 hashes of the secret, never the secret itself."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from parley.storage.base import TableRepository


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    key_hash: str
    org_id: str
    project_id: str
    permissions: tuple[str, ...]
    name: str
    prefix: str  # the first characters of the secret, to recognise a key in listings
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class KeyRepository(TableRepository):
    logical_table = "keys"

    def put(self, record: ApiKeyRecord) -> None:
        item: dict[str, Any] = {
            "pk": {"S": record.key_hash},
            "key_id": {"S": record.key_id},
            "org_id": {"S": record.org_id},
            "project_id": {"S": record.project_id},
            "permissions": {"L": [{"S": p} for p in record.permissions]},
            "name": {"S": record.name},
            "prefix": {"S": record.prefix},
            "created_at": {"S": record.created_at},
        }
        self.client.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)")

    def get_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        found = self.client.get_item(TableName=self.table, Key={"pk": {"S": key_hash}}, ConsistentRead=True)
        item = found.get("Item")
        if item is None:
            return None
        return ApiKeyRecord(
            key_id=item["key_id"]["S"],
            key_hash=item["pk"]["S"],
            org_id=item["org_id"]["S"],
            project_id=item["project_id"]["S"],
            permissions=tuple(p["S"] for p in item.get("permissions", {}).get("L", [])),
            name=item.get("name", {}).get("S", ""),
            prefix=item.get("prefix", {}).get("S", ""),
            created_at=item["created_at"]["S"],
            revoked_at=item.get("revoked_at", {}).get("S"),
        )
