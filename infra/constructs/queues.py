"""The metering queue: usage records DynamoDB would not take at call time wait here (encrypted,
TLS only, with a dead-letter queue for records that keep failing) until the sweep folds them in."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

METERING = "metering"  # route resource: send usage records to the metering queue
METERING_CONSUME = "metering:consume"  # scheduled resource: receive and delete them
SEND_ACTIONS = ("sqs:SendMessage", "sqs:GetQueueUrl")
CONSUME_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl")


class ParleyQueues(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.metering_dlq = sqs.Queue(
            self,
            "MeteringDeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.metering = sqs.Queue(
            self,
            "Metering",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            visibility_timeout=Duration.minutes(6),  # longer than the sweep runs
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=20, queue=self.metering_dlq),
        )

    def grant(self, grantee: iam.IGrantable, resource: str) -> None:
        actions = SEND_ACTIONS if resource == METERING else CONSUME_ACTIONS
        iam.Grant.add_to_principal(grantee=grantee, actions=list(actions), resource_arns=[self.metering.queue_arn])
