"""Stored responses (OpenAI's Responses API) in the conversations table:

    conversations  pk = {project}#{response id}  sk = response   (parley.domain.responses.ResponseRecord)

A response's messages live in its conversation's partitions (parley.storage.conversations); the
record is written in the same transaction as them (ConversationStore.append_messages `extra`), so
a response exists exactly when its input and reply placeholder do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from parley.aws import clients
from parley.domain.responses import ResponseRecord
from parley.settings import get_settings
from parley.storage.base import error_code, write_with_retry
from parley.storage.items import from_item, to_item, to_value

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RESPONSE_SK = "response"


def _key(project_id: str, response_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"{project_id}#{response_id}"}, "sk": {"S": RESPONSE_SK}}


class ResponseStore:
    def __init__(self, client: DynamoDBClient | None = None, table: str | None = None) -> None:
        self._client = client
        self._table = table

    @property
    def client(self) -> DynamoDBClient:
        return self._client or clients().dynamodb

    @property
    def table(self) -> str:
        return self._table or get_settings().table("conversations")

    @staticmethod
    def item(record: ResponseRecord) -> dict[str, Any]:
        """The record as an item of the conversations table (for a transaction's Put)."""
        return {"pk": f"{record.project_id}#{record.id}", "sk": RESPONSE_SK, **record.stored()}

    def get(self, project_id: str, response_id: str) -> ResponseRecord | None:
        found = self.client.get_item(TableName=self.table, Key=_key(project_id, response_id), ConsistentRead=True)
        item = found.get("Item")
        if not item:
            return None
        data = {k: v for k, v in from_item(item).items() if k not in ("pk", "sk")}
        return ResponseRecord(**data)

    def finish(
        self,
        project_id: str,
        response_id: str,
        fields: dict[str, Any],
        expected: tuple[str, ...] = ("in_progress", "queued"),
    ) -> bool:
        """Set `fields` (None removes) on a response whose status is one of `expected` (by default:
        still running); False when it is gone or not (finished, cancelled: a late write brings
        nothing back and changes nothing)."""
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        sets = [f"#f{i} = :f{i}" for i, value in enumerate(fields.values()) if value is not None]
        removes = [f"#f{i}" for i, value in enumerate(fields.values()) if value is None]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        values = {f":f{i}": to_value(v) for i, v in enumerate(fields.values()) if v is not None}
        states = {f":state{i}": {"S": state} for i, state in enumerate(expected)}

        def write() -> None:
            self.client.update_item(
                TableName=self.table,
                Key=_key(project_id, response_id),
                UpdateExpression=expression,
                ConditionExpression=f"attribute_exists(pk) AND #state IN ({', '.join(states)})",
                ExpressionAttributeNames={**names, "#state": "status"},
                ExpressionAttributeValues={**values, **states},
            )

        try:
            write_with_retry(write, what="the response")
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def delete(self, project_id: str, response_id: str) -> bool:
        """Delete the record; False when there was none."""
        try:
            self.client.delete_item(
                TableName=self.table, Key=_key(project_id, response_id), ConditionExpression="attribute_exists(pk)"
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put(self, record: ResponseRecord) -> None:
        """A record on its own (tests, repairs); responses are written with their messages."""
        self.client.put_item(TableName=self.table, Item=to_item(self.item(record)))
