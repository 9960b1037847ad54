"""Every AWS resource Parley's data lives in, created in an emulation (moto) from the same specs
CDK deploys: the tables, the documents bucket, the metering queue. For the local server and tests."""

from __future__ import annotations

from parley.aws import Clients, clients
from parley.settings import Settings, get_settings
from parley.storage.schema import create_tables


def provision(aws: Clients | None = None, settings: Settings | None = None) -> None:
    aws, settings = aws or clients(), settings or get_settings()
    create_tables(aws.dynamodb, dict(settings.tables))
    aws.s3.create_bucket(Bucket=settings.documents_bucket)
    if not settings.metering_queue.startswith(("https://", "http://")):
        aws.sqs.create_queue(QueueName=settings.metering_queue)
