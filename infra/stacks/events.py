"""The events stack: Parley's EventBridge bus (with an archive, for replay), the webhook rule and
its queues, and one function per consumer of the route table (`RouteTable.consumers`):

    conversations + messages streams -> events_emit -> the bus        (stream consumers)
    conversations + messages streams -> search_index -> the search collection
    the bus -> rule (source parley) -> webhook events queue -> ...    (queue consumers)
    the search stack's ingest queue -> index_ingest -> the search collection

Stream consumers get an event source mapping per table: batches in order (one batch per shard at
a time), ReportBatchItemFailures, bisect on error, `max_attempts` retries, then the batch's
location goes to the consumer's dead-letter queue. Queue consumers get ReportBatchItemFailures;
a message received `MAX_RECEIVES` times moves to its queue's DLQ. With the stage's alarms on, every
DLQ has an alarm on its depth, notifying the stage's alarm topic. What a consumer gets from the
resources it names comes from the same table of kinds as the
route functions' (infra.constructs.resources), plus this stack's own: its bus and its queues.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.alarms import notify
from infra.constructs.function import ParleyFunction, ParleyLayers, acknowledge
from infra.constructs.functions import base_environment, strongest
from infra.constructs.queues import MAX_RECEIVES, ParleyQueues, consumer_visibility, dead_letter_alarm, parley_queue
from infra.constructs.resources import Kind, shared_kinds
from infra.constructs.search import ParleySearch, ParleySearchAccess
from infra.constructs.tables import ParleyTables, pascal_case
from infra.stages import Stage
from parley.api.routing import Consumer, RouteTable
from parley.domain.events import SOURCE

__all__ = ["EVENTS_PUT", "MAX_RECEIVES", "QUEUE_SENDS", "QUEUE_SETTINGS", "EventsStack"]

EVENTS_PUT = "events:put"  # consumer resource: PutEvents on Parley's bus
# consumer resources that send to a queue of this stack -> the queue's logical name
QUEUE_SENDS = {"deliveries": "deliveries_queue"}
ARCHIVE_DAYS = 30
# logical queue names (the route table's sources and resources) -> environment variable
QUEUE_SETTINGS = {
    "events_queue": "PARLEY_EVENTS_QUEUE",
    "deliveries_queue": "PARLEY_DELIVERIES_QUEUE",
    "events_dlq": "PARLEY_EVENTS_DLQ",
    "ingest_queue": "PARLEY_INGEST_QUEUE",
}


def _grant_send(queue: sqs.IQueue, function: ParleyFunction) -> None:
    queue.grant_send_messages(function.function)


class EventsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: Stage,
        route_table: RouteTable,
        tables: ParleyTables,
        queues: ParleyQueues,
        search: ParleySearch,
        layers_dir: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config, stage_name = stage, stage.name
        self.bus = events.EventBus(self, "Bus", event_bus_name=f"parley-{stage_name}")
        self.bus.archive(
            "Archive",
            archive_name=f"parley-{stage_name}-events",
            description="Every Parley event, for replay",
            event_pattern=events.EventPattern(source=[SOURCE]),
            retention=Duration.days(ARCHIVE_DAYS),
        )
        self.dead_letters: dict[str, sqs.Queue] = {}
        self.queues: dict[str, sqs.Queue] = {}
        for logical in ("events_queue", "deliveries_queue"):
            visibility = consumer_visibility(route_table, logical)
            self.dead_letters[logical] = parley_queue(self, f"{pascal_case(logical)}DeadLetters", visibility=visibility)
            self.queues[logical] = parley_queue(
                self, pascal_case(logical), visibility=visibility, dlq=self.dead_letters[logical]
            )
        # the stream mappings' on-failure destination (it gets where a failed batch is, not its records)
        self.queues["events_dlq"] = parley_queue(self, "EventsDeadLetters", visibility=Duration.minutes(6))
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
            if stage.alarms:
                alarm = dead_letter_alarm(
                    self,
                    f"{pascal_case(logical)}DeadLettersAlarm",
                    queue=queue,
                    description=f"Parley {stage_name}: messages are waiting in the {logical} dead-letter queue",
                )
                notify(alarm, stage_name)
        # the queues consumers may read, by logical name: this stack's and the search stack's
        self.sources: dict[str, sqs.IQueue] = {**self.queues, **search.queues}
        self.search_access = ParleySearchAccess(self, "SearchAccess", search=search, suffix="evt")
        self.kinds = shared_kinds(
            stage=stage_name, tables=tables, queues=queues, search=search, search_access=self.search_access
        ).with_(self._own_kinds())
        self.layers = ParleyLayers(self, "Layers", layers_dir=layers_dir)
        self.functions: dict[str, ParleyFunction] = {}
        for consumer in route_table.consumers:
            self.functions[consumer.function] = self._consumer(stage, route_table, consumer, tables)
        CfnOutput(self, "EventBusName", value=self.bus.event_bus_name, description="Parley's EventBridge bus")

    def _own_kinds(self) -> Mapping[str, Kind]:
        kinds = {
            EVENTS_PUT: Kind(
                grant=lambda f: self.bus.grant_put_events_to(f.function),
                environment={"PARLEY_EVENT_BUS": self.bus.event_bus_name},
            )
        }
        for resource, logical in QUEUE_SENDS.items():
            kinds[resource] = Kind(
                grant=partial(_grant_send, self.queues[logical]),
                environment={QUEUE_SETTINGS[logical]: self.queues[logical].queue_url},
            )
        return kinds

    def _consumer(
        self,
        stage: Stage,
        route_table: RouteTable,
        consumer: Consumer,
        tables: ParleyTables,
    ) -> ParleyFunction:
        resources = strongest(set(consumer.resources))
        self.kinds.check(consumer.function, resources)
        environment = base_environment(stage.name, log_content=stage.log_content) | self.kinds.environment(resources)
        environment["PARLEY_EVENT_BUS"] = self.bus.event_bus_name
        if consumer.kind == "stream":
            dead_letter = consumer.dead_letter or "events_dlq"
            environment[QUEUE_SETTINGS[dead_letter]] = self.queues[dead_letter].queue_url
            # which table a record comes from is told by its eventSourceARN's table name
            environment |= dict(tables.table_names(consumer.sources))
        else:
            for logical in consumer.sources:
                environment[QUEUE_SETTINGS[logical]] = self.sources[logical].queue_url
        function = ParleyFunction(
            self,
            pascal_case(consumer.function),
            code_dir=route_table.root / consumer.function,
            description=f"Parley {consumer.kind} consumer: {consumer.description}"[:256],
            layers=self.layers,
            environment=environment,
            memory_mb=consumer.memory_mb,
            timeout=Duration.seconds(consumer.timeout_seconds),
            log_retention=stage.log_retention,
            group="consumers",
            reserved_concurrency=stage.reserved_concurrency.get("consumers"),
        )
        self.kinds.grant(function, resources)
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
                        self.sources[logical], batch_size=consumer.batch_size, report_batch_item_failures=True
                    )
                )
        return function
