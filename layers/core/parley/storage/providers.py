"""AI provider records in the `chats` table.

    pk = {project}#provider        sk = {provider_id}   the record
    pk = {project}#provider_name   sk = {name, lower}   the name's owner (names are unique per project)
    pk = {project}#settings        sk = default_provider  the project's default provider

Record, name and default pointer change together in one transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from parley.domain.errors import Conflict
from parley.domain.providers import ProviderRecord
from parley.storage.base import REASON_CONDITION, TableRepository, cancellation_reasons, error_code, write_with_retry
from parley.storage.items import from_item, to_item, to_value

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef


class ProviderRepository(TableRepository):
    logical_table = "chats"

    @staticmethod
    def _key(project_id: str, provider_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"{project_id}#provider"}, "sk": {"S": provider_id}}

    @staticmethod
    def _name_key(project_id: str, name: str) -> dict[str, Any]:
        return {"pk": {"S": f"{project_id}#provider_name"}, "sk": {"S": name.lower()}}

    @staticmethod
    def _default_key(project_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"{project_id}#settings"}, "sk": {"S": "default_provider"}}

    def get(self, project_id: str, provider_id: str, *, consistent: bool = True) -> ProviderRecord | None:
        """The record (a strongly consistent read unless `consistent=False`: the API's reads and
        the read before an update see the latest write; a model call may read eventually)."""
        found = self.client.get_item(
            TableName=self.table, Key=self._key(project_id, provider_id), ConsistentRead=consistent
        )
        item = found.get("Item")
        return _record(item) if item else None

    def page(self, project_id: str, limit: int, after: str | None) -> tuple[list[ProviderRecord], str | None]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"{project_id}#provider"}},
            "Limit": limit,
        }
        if after is not None:
            request["ExclusiveStartKey"] = self._key(project_id, after)
        page = self.client.query(**request)
        items = [_record(i) for i in page.get("Items", [])]
        last = page.get("LastEvaluatedKey")
        return items, (str(last["sk"]["S"]) if last else None)

    def id_by_name(self, project_id: str, name: str, *, consistent: bool = False) -> str | None:
        found = self.client.get_item(
            TableName=self.table, Key=self._name_key(project_id, name), ConsistentRead=consistent
        )
        item = found.get("Item")
        return item["provider_id"]["S"] if item else None

    def default_id(self, project_id: str, *, consistent: bool = False) -> str | None:
        found = self.client.get_item(TableName=self.table, Key=self._default_key(project_id), ConsistentRead=consistent)
        item = found.get("Item")
        return item["provider_id"]["S"] if item else None

    def create(self, record: ProviderRecord, *, make_default: bool) -> None:
        project, provider_id = record.project_id, record.id
        writes: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {**self._key(project, provider_id), **to_item(record.stored())},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {**self._name_key(project, record.name), "provider_id": {"S": provider_id}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        if make_default:
            writes.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {**self._default_key(project), "provider_id": {"S": provider_id}},
                    }
                }
            )
        self._transact(writes, name_put=1, name=record.name)

    def update(
        self,
        record: ProviderRecord,
        *,
        expected_version: int,
        old_name: str,
        default: bool | None,
        was_default: bool,
    ) -> None:
        """Replace the record (if still at expected_version), moving its name and default pointer."""
        project, provider_id = record.project_id, record.id
        writes: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {**self._key(project, provider_id), **to_item(record.stored())},
                    "ConditionExpression": "#v = :v",
                    "ExpressionAttributeNames": {"#v": "version"},
                    "ExpressionAttributeValues": {":v": to_value(expected_version)},
                }
            },
        ]
        name_put = None
        if record.name.lower() != old_name.lower():
            name_put = 2
            writes.append(
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": self._name_key(project, old_name),
                        "ConditionExpression": "provider_id = :id",
                        "ExpressionAttributeValues": {":id": {"S": provider_id}},
                    }
                }
            )
            writes.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {**self._name_key(project, record.name), "provider_id": {"S": provider_id}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        if default is True and not was_default:
            writes.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {**self._default_key(project), "provider_id": {"S": provider_id}},
                    }
                }
            )
        elif default is False and was_default:
            writes.append(self._delete_default(project, provider_id))
        self._transact(writes, name_put=name_put, name=record.name)

    def delete(self, record: ProviderRecord, *, was_default: bool) -> None:
        project, provider_id = record.project_id, record.id
        writes: list[TransactWriteItemTypeDef] = [
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": self._key(project, provider_id),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": self._name_key(project, record.name),
                    "ConditionExpression": "provider_id = :id",
                    "ExpressionAttributeValues": {":id": {"S": provider_id}},
                }
            },
        ]
        if was_default:
            writes.append(self._delete_default(project, provider_id))
        self._transact(writes, name_put=None, name=record.name)

    def _delete_default(self, project: str, provider_id: str) -> TransactWriteItemTypeDef:
        return {
            "Delete": {
                "TableName": self.table,
                "Key": self._default_key(project),
                "ConditionExpression": "provider_id = :id",
                "ExpressionAttributeValues": {":id": {"S": provider_id}},
            }
        }

    def _transact(self, writes: list[TransactWriteItemTypeDef], *, name_put: int | None, name: str) -> None:
        """Run the writes; `name_put` is the index of the write claiming the name, if any.
        Conflicts with other transactions are retried and throttling answers 503
        (`write_with_retry`); a failed condition is a taken name or a concurrent change."""
        try:
            write_with_retry(lambda: self.client.transact_write_items(TransactItems=writes), what="the provider")
        except ClientError as error:
            reasons = cancellation_reasons(error)
            if error_code(error) != "TransactionCanceledException" or REASON_CONDITION not in reasons:
                raise
            if name_put is not None and name_put < len(reasons) and reasons[name_put] == REASON_CONDITION:
                raise Conflict(
                    f"A provider named {name!r} already exists in this project.",
                    code="provider_name_taken",
                    param="name",
                ) from None
            raise Conflict(
                "The provider changed while this request ran; read it again and retry.", code="concurrent_update"
            ) from None


def _record(item: dict[str, Any]) -> ProviderRecord:
    data = from_item(item)
    data.pop("pk", None)
    data.pop("sk", None)
    return ProviderRecord(**data)
