"""Simple resources in the `chats` table, one partition per scope, sk = id: a project's chats,
documents and listed API keys (pk = {project}#{kind}), an organization's projects
(pk = org#{org}#projects). A query per page; a version for conditional updates."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from botocore.exceptions import ClientError

from parley.domain.errors import Conflict
from parley.domain.records import IdentifiedRecord, ProjectRecord
from parley.storage.base import TableRepository, error_code, write_with_retry
from parley.storage.items import from_item, to_item, to_value

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


S = TypeVar("S", bound=IdentifiedRecord)
R = TypeVar("R", bound=ProjectRecord)


class ScopedRepository(TableRepository, Generic[S], ABC):
    """Records of one kind, typed as `model`, in one partition per scope (`partition`), each
    record's scope given by `scope_of`."""

    logical_table = "chats"
    newest_first = True  # ids are ULIDs: a page is newest first

    def __init__(
        self, kind: str, model: type[S], client: DynamoDBClient | None = None, table: str | None = None
    ) -> None:
        super().__init__(client, table)
        self.kind = kind
        self.model = model

    @abstractmethod
    def partition(self, scope: str) -> str:
        """The partition key of a scope's records."""

    @abstractmethod
    def scope_of(self, record: S) -> str:
        """The scope a record belongs to."""

    def _key(self, scope: str, resource_id: str) -> dict[str, Any]:
        return {"pk": {"S": self.partition(scope)}, "sk": {"S": resource_id}}

    def _record(self, item: dict[str, Any]) -> S:
        data = from_item(item)
        data.pop("pk", None)
        data.pop("sk", None)
        return self.model(**data)

    def _item(self, record: S) -> dict[str, Any]:
        return {**self._key(self.scope_of(record), record.id), **to_item(record.stored())}

    def insert(self, record: S) -> bool:
        """False when a record with this id exists already (nothing is overwritten)."""
        item = self._item(record)
        return self._conditional(
            lambda: self.client.put_item(
                TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        )

    def _conditional(self, write: Callable[[], object]) -> bool:
        """A conditional write, retried as every write is; False when its condition failed."""
        try:
            write_with_retry(write, what=f"the {self.kind}")
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get(self, scope: str, resource_id: str) -> S | None:
        found = self.client.get_item(TableName=self.table, Key=self._key(scope, resource_id), ConsistentRead=True)
        item = found.get("Item")
        return self._record(item) if item else None

    def page(self, scope: str, limit: int, after: str | None) -> tuple[list[S], str | None]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": self.partition(scope)}},
            "ScanIndexForward": not self.newest_first,
            "Limit": limit,
        }
        if after is not None:
            request["ExclusiveStartKey"] = self._key(scope, after)
        page = self.client.query(**request)
        last = page.get("LastEvaluatedKey")
        return [self._record(i) for i in page.get("Items", [])], (str(last["sk"]["S"]) if last else None)

    def replace(self, record: S, expected_version: int) -> None:
        item = self._item(record)
        try:
            write_with_retry(
                lambda: self.client.put_item(
                    TableName=self.table,
                    Item=item,
                    ConditionExpression="#v = :v",
                    ExpressionAttributeNames={"#v": "version"},
                    ExpressionAttributeValues={":v": to_value(expected_version)},
                ),
                what=f"the {self.kind}",
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise Conflict(
                    f"The {self.kind} changed while this request ran; read it again and retry.",
                    code="concurrent_update",
                ) from None
            raise

    def delete(self, scope: str, resource_id: str) -> bool:
        """False when there was nothing to delete."""
        key = self._key(scope, resource_id)
        return self._conditional(
            lambda: self.client.delete_item(TableName=self.table, Key=key, ConditionExpression="attribute_exists(pk)")
        )


class ResourceRepository(ScopedRepository[R]):
    """A project's records of one kind: pk = {project}#{kind}."""

    def partition(self, scope: str) -> str:
        return f"{scope}#{self.kind}"

    def scope_of(self, record: R) -> str:
        return record.project_id

    def put_new(self, record: R) -> None:
        if not self.insert(record):  # a fresh ULID never collides; refuse rather than overwrite
            raise Conflict(f"A {self.kind} with id {record.id!r} exists already.", code="already_exists")
