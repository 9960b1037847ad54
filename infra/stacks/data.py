"""The data stack: the DynamoDB tables, the documents bucket, the metering queue and the cursor-signing
key. Stateful and long-lived, so it changes rarely and alone. Its outputs name every table
(<Logical>TableName, e.g. KeysTableName, which `parley-admin create-key --keys-table` takes) and the
bucket (DocumentsBucketName)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.constructs.cursors import ParleyCursorKey
from infra.constructs.documents import ParleyDocuments
from infra.constructs.queues import ParleyQueues
from infra.constructs.tables import ParleyTables, pascal_case


class DataStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, stage: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.tables = ParleyTables(self, "Tables")
        self.documents = ParleyDocuments(self, "Documents", stage=stage)
        self.queues = ParleyQueues(self, "Queues")
        self.cursor_key = ParleyCursorKey(self, "CursorKey", stage=stage)
        for logical, table in self.tables.tables.items():
            CfnOutput(
                self,
                table_output(logical),
                value=table.table_name,
                description=f"Name of the {logical} table (PARLEY_TABLE_{logical.upper()})",
            )
        CfnOutput(
            self,
            DOCUMENTS_BUCKET_OUTPUT,
            value=self.documents.bucket.bucket_name,
            description="Name of the documents bucket (PARLEY_DOCUMENTS_BUCKET)",
        )


DOCUMENTS_BUCKET_OUTPUT = "DocumentsBucketName"


def table_output(logical: str) -> str:
    """The output naming a table: "keys" -> "KeysTableName"."""
    return f"{pascal_case(logical)}TableName"
