"""What every DynamoDB repository has: the client and its table, resolved lazily and injectable."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from botocore.exceptions import ClientError

from parley.aws import clients
from parley.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class TableRepository:
    logical_table: ClassVar[str]  # which of Settings.tables this repository uses

    def __init__(self, client: DynamoDBClient | None = None, table: str | None = None) -> None:
        self._client = client
        self._table = table

    @property
    def client(self) -> DynamoDBClient:
        return self._client or clients().dynamodb

    @property
    def table(self) -> str:
        return self._table or get_settings().table(self.logical_table)


def error_code(error: ClientError) -> str:
    """The AWS error code of a ClientError ("" when it has none)."""
    return str(error.response.get("Error", {}).get("Code", ""))
