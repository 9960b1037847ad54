"""The data stack: the DynamoDB tables, the documents bucket, the metering queue and the cursor-signing
key. Stateful and long-lived, so it changes rarely and alone."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from infra.constructs.cursors import ParleyCursorKey
from infra.constructs.documents import ParleyDocuments
from infra.constructs.queues import ParleyQueues
from infra.constructs.tables import ParleyTables


class DataStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, stage: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.tables = ParleyTables(self, "Tables")
        self.documents = ParleyDocuments(self, "Documents", stage=stage)
        self.queues = ParleyQueues(self, "Queues")
        self.cursor_key = ParleyCursorKey(self, "CursorKey", stage=stage)
