"""The data stack: the DynamoDB tables. Stateful and long-lived, so it changes rarely and alone."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from infra.constructs.tables import ParleyTables


class DataStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.tables = ParleyTables(self, "Tables")
