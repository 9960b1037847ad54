"""Every AWS resource Parley's data lives in, created in an emulation (moto) from the same specs
CDK deploys: the tables, the documents bucket, the metering queue. For the local server and tests.
Only what is missing is created, so it also completes a restored local state (new tables)."""

from __future__ import annotations

from parley.aws import Clients, clients
from parley.settings import Settings, get_settings
from parley.storage.schema import TABLES, create_tables


def provision(aws: Clients | None = None, settings: Settings | None = None) -> None:
    aws, settings = aws or clients(), settings or get_settings()
    names = dict(settings.tables)
    existing = set(aws.dynamodb.list_tables().get("TableNames", []))
    missing = [t for t in TABLES if names.get(t.logical, f"parley-{t.logical}") not in existing]
    create_tables(aws.dynamodb, names, missing)
    if settings.documents_bucket not in {b["Name"] for b in aws.s3.list_buckets().get("Buckets", [])}:
        aws.s3.create_bucket(Bucket=settings.documents_bucket)
    if not settings.metering_queue.startswith(("https://", "http://")):
        aws.sqs.create_queue(QueueName=settings.metering_queue)
