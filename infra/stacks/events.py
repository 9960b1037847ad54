"""The events stack: Parley's EventBridge bus (with an archive, for replay), the webhook rule and
its queues, and one function per consumer of the route table (`RouteTable.consumers`):

    conversations + messages streams -> events_emit -> the bus        (stream consumers)
    the bus -> rule (source parley) -> webhook events queue -> ...    (queue consumers)

Stream consumers get an event source mapping per table: batches in order (one batch per shard at
a time), ReportBatchItemFailures, bisect on error, `max_attempts` retries, then the batch's
location goes to the consumer's dead-letter queue. Queue consumers get ReportBatchItemFailures;
a message received `MAX_RECEIVES` times moves to its queue's DLQ. Every DLQ has an alarm on its
depth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.function import ParleyFunction, ParleyLayers, acknowledge
from infra.constructs.functions import SECRET_READ_ACTIONS, SECRETS_READ, base_environment, grant_provider_secrets
from infra.constructs.tables import ParleyTables, pascal_case, table_access
from parley.api.routing import Consumer, RouteTable
from parley.domain.events import SOURCE

EVENTS_PUT = "events:put"  # consumer resource: PutEvents on Parley's bus
# consumer resources that send to a queue of this stack -> the queue's logical name
QUEUE_SENDS = {"deliveries": "deliveries_queue"}
MAX_RECEIVES = 5
ARCHIVE_DAYS = 30
# logical queue names (the route table's sources and resources) -> environment variable
QUEUE_SETTINGS = {
    "events_queue": "PARLEY_EVENTS_QUEUE",
    "deliveries_queue": "PARLEY_DELIVERIES_QUEUE",
    "events_dlq": "PARLEY_EVENTS_DLQ",
}


def _queue(scope: Construct, construct_id: str, *, visibility: Duration, dlq: sqs.IQueue | None) -> sqs.Queue:
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
        visibility_timeout=visibility,
        dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=MAX_RECEIVES, queue=dlq) if dlq else None,
    )


class EventsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        route_table: RouteTable,
        tables: ParleyTables,
        layers_dir: Path,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.bus = events.EventBus(self, "Bus", event_bus_name=f"parley-{stage}")
        self.bus.archive(
            "Archive",
            archive_name=f"parley-{stage}-events",
            description="Every Parley event, for replay",
            event_pattern=events.EventPattern(source=[SOURCE]),
            retention=Duration.days(ARCHIVE_DAYS),
        )
        longest = max((c.timeout_seconds for c in route_table.consumers), default=60)
        visibility = Duration.seconds(longest * 6)  # AWS's advice for Lambda-consumed queues
        self.dead_letters: dict[str, sqs.Queue] = {}
        self.queues: dict[str, sqs.Queue] = {}
        for logical in ("events_queue", "deliveries_queue"):
            self.dead_letters[logical] = _queue(
                self, f"{pascal_case(logical)}DeadLetters", visibility=visibility, dlq=None
            )
            self.queues[logical] = _queue(
                self, pascal_case(logical), visibility=visibility, dlq=self.dead_letters[logical]
            )
        # the stream mappings' on-failure destination (it gets where a failed batch is, not its records)
        self.queues["events_dlq"] = _queue(self, "EventsDeadLetters", visibility=visibility, dlq=None)
        self.dead_letters["events_dlq"] = self.queues["events_dlq"]
        acknowledge(
            self.queues["events_dlq"],
            "AwsSolutions-SQS3",
            "This queue is a dead-letter queue: the stream event source mappings' on-failure destination.",
        )
        events.Rule(
            self,
            "Webhooks",
            event_bus=self.bus,
            description="Every Parley event to the webhook events queue",
            event_pattern=events.EventPattern(source=[SOURCE]),
            targets=[targets.SqsQueue(self.queues["events_queue"])],
        )
        for logical, queue in self.dead_letters.items():
            cloudwatch.Alarm(
                self,
                f"{pascal_case(logical)}DeadLettersAlarm",
                alarm_description=f"Parley {stage}: messages are waiting in the {logical} dead-letter queue",
                metric=queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        self.layers = ParleyLayers(self, "Layers", layers_dir=layers_dir)
        self.functions: dict[str, ParleyFunction] = {}
        for consumer in route_table.consumers:
            self.functions[consumer.function] = self._consumer(stage, route_table, consumer, tables, log_retention)
        CfnOutput(self, "EventBusName", value=self.bus.event_bus_name, description="Parley's EventBridge bus")

    def _consumer(
        self,
        stage: str,
        route_table: RouteTable,
        consumer: Consumer,
        tables: ParleyTables,
        log_retention: logs.RetentionDays,
    ) -> ParleyFunction:
        grants = [access for r in consumer.resources if (access := table_access(r, tables.tables))]
        sends = [QUEUE_SENDS[r] for r in consumer.resources if r in QUEUE_SENDS]
        known = {EVENTS_PUT, SECRETS_READ, *QUEUE_SENDS}
        unknown = sorted(
            set(consumer.resources) - known - {r for r in consumer.resources if table_access(r, tables.tables)}
        )
        if unknown:
            raise ValueError(f"functions/{consumer.function}: unknown resources {unknown}")
        environment = base_environment(stage) | dict(tables.table_names(t for t, _ in grants))
        environment["PARLEY_EVENT_BUS"] = self.bus.event_bus_name
        for logical, queue in self.queues.items():
            if logical in consumer.sources or logical in sends:
                environment[QUEUE_SETTINGS[logical]] = queue.queue_url
        if consumer.kind == "stream":
            environment["PARLEY_EVENTS_DLQ"] = self.queues[consumer.dead_letter or "events_dlq"].queue_url
            # which table a record comes from is told by its eventSourceARN's table name
            environment |= dict(tables.table_names(consumer.sources))
        function = ParleyFunction(
            self,
            pascal_case(consumer.function),
            code_dir=route_table.root / consumer.function,
            description=f"Parley {consumer.kind} consumer: {consumer.description}"[:256],
            layers=self.layers,
            environment=environment,
            memory_mb=consumer.memory_mb,
            timeout=Duration.seconds(consumer.timeout_seconds),
            log_retention=log_retention,
        )
        for logical, access in grants:
            tables.grant_data(function.function, logical, access)
        if EVENTS_PUT in consumer.resources:
            self.bus.grant_put_events_to(function.function)
        if SECRETS_READ in consumer.resources:
            grant_provider_secrets(function, stage, SECRET_READ_ACTIONS)
        for logical in sends:
            self.queues[logical].grant_send_messages(function.function)
        if consumer.kind == "stream":
            for logical in consumer.sources:
                function.function.add_event_source(
                    sources.DynamoEventSource(
                        tables.table(logical),
                        starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                        batch_size=consumer.batch_size,
                        bisect_batch_on_error=True,
                        retry_attempts=consumer.max_attempts,
                        report_batch_item_failures=True,
                        parallelization_factor=1,  # one batch per shard at a time: order per item
                        on_failure=sources.SqsDlq(self.queues[consumer.dead_letter or "events_dlq"]),
                    )
                )
        else:
            for logical in consumer.sources:
                function.function.add_event_source(
                    sources.SqsEventSource(
                        self.queues[logical], batch_size=consumer.batch_size, report_batch_item_failures=True
                    )
                )
        return function
