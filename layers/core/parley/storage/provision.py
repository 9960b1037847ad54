"""Every AWS resource Parley's data lives in, created in an emulation (moto) from the same specs
CDK deploys: the tables, the documents bucket, the queues, the event bus and its webhook rule.
For the local server and tests. Only what is missing is created, so it also completes a restored
local state (new tables, and indexes added to a table's spec since)."""

from __future__ import annotations

import json

from parley.aws import Clients, clients
from parley.domain.events import SOURCE
from parley.settings import Settings, get_settings
from parley.storage.schema import TABLES, create_missing_indexes, create_tables

EVENT_PATTERN = json.dumps({"source": [SOURCE]})


def provision(aws: Clients | None = None, settings: Settings | None = None) -> None:
    aws, settings = aws or clients(), settings or get_settings()
    names = dict(settings.tables)
    existing = set(aws.dynamodb.list_tables().get("TableNames", []))
    missing = [t for t in TABLES if names.get(t.logical, f"parley-{t.logical}") not in existing]
    create_tables(aws.dynamodb, names, missing)
    create_missing_indexes(aws.dynamodb, names, [t for t in TABLES if t not in missing])
    if settings.documents_bucket not in {b["Name"] for b in aws.s3.list_buckets().get("Buckets", [])}:
        aws.s3.create_bucket(Bucket=settings.documents_bucket)
    for queue in (
        settings.metering_queue,
        settings.events_queue,
        settings.deliveries_queue,
        settings.events_dlq,
        settings.ingest_queue,
    ):
        if not queue.startswith(("https://", "http://")):
            aws.sqs.create_queue(QueueName=queue)  # answers the existing queue's URL when it exists
    provision_events(aws, settings)


WEBHOOK_RULE = "parley-webhooks"


def provision_events(aws: Clients, settings: Settings) -> None:
    """The bus and, as the events stack deploys it, the rule that feeds every Parley event to the
    webhook events queue."""
    if settings.event_bus.startswith("arn:") or settings.events_queue.startswith(("https://", "http://")):
        return
    buses = {b["Name"] for b in aws.events.list_event_buses().get("EventBuses", [])}
    if settings.event_bus not in buses:
        aws.events.create_event_bus(Name=settings.event_bus)
    url = aws.sqs.get_queue_url(QueueName=settings.events_queue)["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.events.put_rule(Name=WEBHOOK_RULE, EventBusName=settings.event_bus, EventPattern=EVENT_PATTERN)
    aws.events.put_targets(Rule=WEBHOOK_RULE, EventBusName=settings.event_bus, Targets=[{"Id": "webhooks", "Arn": arn}])
