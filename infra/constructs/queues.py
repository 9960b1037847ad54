"""Queues the Parley way (encrypted, TLS only, 14 days), their dead-letter alarms, and the metering
queue: usage records DynamoDB would not take at call time wait there (with a dead-letter queue for
records that keep failing) until the sweep folds them in."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from parley.api.routing import RouteTable

METERING = "metering"  # route resource: send usage records to the metering queue
METERING_CONSUME = "metering:consume"  # scheduled resource: receive and delete them
SEND_ACTIONS = ("sqs:SendMessage", "sqs:GetQueueUrl")
CONSUME_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl")
# A message received this often by its consumer moves to the queue's dead-letter queue.
MAX_RECEIVES = 5
# AWS's advice for a queue a Lambda function consumes: a visibility timeout of at least six times
# the function's timeout (the poller's retries of a throttled invocation fit in it).
VISIBILITY_FACTOR = 6
DEFAULT_CONSUMER_TIMEOUT_S = 60


def parley_queue(
    scope: Construct,
    construct_id: str,
    *,
    visibility: Duration | None = None,
    dlq: sqs.IQueue | None = None,
    max_receives: int = MAX_RECEIVES,
) -> sqs.Queue:
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
        visibility_timeout=visibility,
        dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=max_receives, queue=dlq) if dlq else None,
    )


def consumer_visibility(route_table: RouteTable, logical: str) -> Duration:
    """The visibility timeout of a queue the route table's consumers read: six times the longest
    timeout among the consumers whose sources name it."""
    timeouts = [c.timeout_seconds for c in route_table.consumers if c.kind == "queue" and logical in c.sources]
    return Duration.seconds(VISIBILITY_FACTOR * max(timeouts, default=DEFAULT_CONSUMER_TIMEOUT_S))


def dead_letter_alarm(scope: Construct, construct_id: str, *, queue: sqs.IQueue, description: str) -> cloudwatch.Alarm:
    """An alarm as soon as a message waits in a dead-letter queue (depth > 0 over 5 minutes)."""
    return cloudwatch.Alarm(
        scope,
        construct_id,
        alarm_description=description,
        metric=queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
        threshold=0,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )


class ParleyQueues(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.metering_dlq = parley_queue(self, "MeteringDeadLetters")
        self.metering = parley_queue(
            self,
            "Metering",
            visibility=Duration.minutes(6),  # longer than the sweep runs
            dlq=self.metering_dlq,
            max_receives=20,
        )

    def grant(self, grantee: iam.IGrantable, resource: str) -> None:
        actions = SEND_ACTIONS if resource == METERING else CONSUME_ACTIONS
        iam.Grant.add_to_principal(grantee=grantee, actions=list(actions), resource_arns=[self.metering.queue_arn])
