"""The data stack: the DynamoDB tables, the documents bucket, the metering queue and the cursor-signing
key. Stateful and long-lived, so it changes rarely and alone. Its outputs name every table
(<Logical>TableName, e.g. KeysTableName, which `parley-admin create-key --keys-table` takes) and the
bucket (DocumentsBucketName).

The stage decides what a deletion keeps (infra.stages.Stage: production retains the tables, with
deletion protection and point-in-time recovery, and the bucket; development destroys them). With
the stage's alarms on, two alarms watch the metering queues: a usage record parked on the metering
queue (DynamoDB would not take it at call time; the sweep folds it in within minutes) and one that
reached the metering dead-letter queue (the sweep kept failing on it).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from infra.constructs.alarms import notify
from infra.constructs.cursors import ParleyCursorKey
from infra.constructs.documents import ParleyDocuments
from infra.constructs.queues import ParleyQueues, dead_letter_alarm
from infra.constructs.tables import ParleyTables, pascal_case
from infra.stages import Stage


class DataStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, stage: Stage, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.tables = ParleyTables(
            self,
            "Tables",
            removal_policy=stage.removal_policy,
            deletion_protection=stage.deletion_protection,
            point_in_time_recovery=stage.point_in_time_recovery,
        )
        self.documents = ParleyDocuments(self, "Documents", stage=stage.name, retain=stage.retain)
        self.queues = ParleyQueues(self, "Queues")
        self.cursor_key = ParleyCursorKey(self, "CursorKey", stage=stage.name)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        if stage.alarms:
            self.alarms["MeteringDeadLetters"] = notify(
                dead_letter_alarm(
                    self,
                    "MeteringDeadLettersAlarm",
                    queue=self.queues.metering_dlq,
                    description=f"Parley {stage.name}: usage records are waiting in the metering dead-letter "
                    "queue (the sweep could not fold them in): usage and budgets undercount until redriven",
                ),
                stage.name,
            )
            self.alarms["MeteringParked"] = notify(
                cloudwatch.Alarm(
                    self,
                    "MeteringParkedAlarm",
                    alarm_description=f"Parley {stage.name}: usage records are parked on the metering queue "
                    "(DynamoDB refused them at call time; the sweep folds them in every 5 minutes)",
                    metric=self.queues.metering.metric_approximate_number_of_messages_visible(
                        period=Duration.minutes(5), statistic="Maximum"
                    ),
                    threshold=0,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    evaluation_periods=1,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                ),
                stage.name,
            )
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
