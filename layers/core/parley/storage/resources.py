"""Simple project-scoped resources (chats, documents) in the `chats` table:
pk = {project}#{kind}, sk = id. A query per page; a version for conditional updates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from botocore.exceptions import ClientError

from parley.domain.errors import Conflict
from parley.domain.records import ProjectRecord
from parley.storage.base import TableRepository, error_code, write_with_retry
from parley.storage.items import from_item, to_item, to_value

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


R = TypeVar("R", bound=ProjectRecord)


class ResourceRepository(TableRepository, Generic[R]):
    """Records of one kind, typed as `model`."""

    logical_table = "chats"

    def __init__(
        self, kind: str, model: type[R], client: DynamoDBClient | None = None, table: str | None = None
    ) -> None:
        super().__init__(client, table)
        self.kind = kind
        self.model = model

    def _key(self, project_id: str, resource_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"{project_id}#{self.kind}"}, "sk": {"S": resource_id}}

    def _record(self, item: dict[str, Any]) -> R:
        data = from_item(item)
        data.pop("pk", None)
        data.pop("sk", None)
        return self.model(**data)

    def put_new(self, record: R) -> None:
        item = {**self._key(record.project_id, record.id), **to_item(record.stored())}
        write_with_retry(
            lambda: self.client.put_item(
                TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            ),
            what=f"the {self.kind}",
        )

    def get(self, project_id: str, resource_id: str) -> R | None:
        found = self.client.get_item(TableName=self.table, Key=self._key(project_id, resource_id), ConsistentRead=True)
        item = found.get("Item")
        return self._record(item) if item else None

    def page(self, project_id: str, limit: int, after: str | None) -> tuple[list[R], str | None]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"{project_id}#{self.kind}"}},
            "ScanIndexForward": False,  # ids are ULIDs: newest first
            "Limit": limit,
        }
        if after is not None:
            request["ExclusiveStartKey"] = self._key(project_id, after)
        page = self.client.query(**request)
        last = page.get("LastEvaluatedKey")
        return [self._record(i) for i in page.get("Items", [])], (str(last["sk"]["S"]) if last else None)

    def replace(self, record: R, expected_version: int) -> None:
        item = {**self._key(record.project_id, record.id), **to_item(record.stored())}
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

    def delete(self, project_id: str, resource_id: str) -> bool:
        try:
            write_with_retry(
                lambda: self.client.delete_item(
                    TableName=self.table,
                    Key=self._key(project_id, resource_id),
                    ConditionExpression="attribute_exists(pk)",
                ),
                what=f"the {self.kind}",
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True
