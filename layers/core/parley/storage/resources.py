"""Simple project-scoped resources (chats, documents) in the `chats` table:
pk = {project}#{kind}, sk = id. A query per page; a version for conditional updates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from parley.domain.errors import Conflict
from parley.storage.base import TableRepository, error_code
from parley.storage.items import from_item, to_item, to_value

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class ResourceRepository(TableRepository):
    logical_table = "chats"

    def __init__(self, kind: str, client: DynamoDBClient | None = None, table: str | None = None) -> None:
        super().__init__(client, table)
        self.kind = kind

    def _key(self, project_id: str, resource_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"{project_id}#{self.kind}"}, "sk": {"S": resource_id}}

    def put_new(self, record: dict[str, Any]) -> None:
        item = {**self._key(record["project_id"], record["id"]), **to_item(record)}
        self.client.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)")

    def get(self, project_id: str, resource_id: str) -> dict[str, Any] | None:
        found = self.client.get_item(TableName=self.table, Key=self._key(project_id, resource_id), ConsistentRead=True)
        item = found.get("Item")
        return _plain(item) if item else None

    def page(self, project_id: str, limit: int, after: str | None) -> tuple[list[dict[str, Any]], str | None]:
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
        return [_plain(i) for i in page.get("Items", [])], (str(last["sk"]["S"]) if last else None)

    def replace(self, record: dict[str, Any], expected_version: int) -> None:
        item = {**self._key(record["project_id"], record["id"]), **to_item(record)}
        try:
            self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="#v = :v",
                ExpressionAttributeNames={"#v": "version"},
                ExpressionAttributeValues={":v": to_value(expected_version)},
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
            self.client.delete_item(
                TableName=self.table, Key=self._key(project_id, resource_id), ConditionExpression="attribute_exists(pk)"
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    data = from_item(item)
    data.pop("pk", None)
    data.pop("sk", None)
    return data
