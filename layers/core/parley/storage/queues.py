"""SQS queues Parley parks work in: the metering queue holds usage records DynamoDB would not
take, until the sweep folds them into the counters; the webhook deliveries queue holds one
message per scheduled delivery attempt (parley.services.webhooks)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from parley.aws import clients
from parley.settings import Settings, get_settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_DELAY_SECONDS = 900  # SQS delays a message at most 15 minutes


class Queue:
    """One queue, named by a setting (`setting`), or given by name or URL."""

    setting = "metering_queue"

    def __init__(self, client: SQSClient | None = None, queue: str | None = None) -> None:
        self._client = client
        self._queue = queue
        self._url: str | None = None

    @property
    def client(self) -> SQSClient:
        return self._client or clients().sqs

    @property
    def url(self) -> str:
        """The queue's URL: given as one by CDK, or looked up by name (locally)."""
        if self._url is not None:
            return self._url
        settings: Settings = get_settings()
        queue = self._queue or str(getattr(settings, self.setting))
        if not queue.startswith(("https://", "http://")):
            queue = str(self.client.get_queue_url(QueueName=queue)["QueueUrl"])
        self._url = queue
        return queue

    def send(self, body: dict[str, Any], delay_seconds: int = 0) -> None:
        delay = max(0, min(MAX_DELAY_SECONDS, delay_seconds))
        self.client.send_message(
            QueueUrl=self.url, MessageBody=json.dumps(body, separators=(",", ":")), DelaySeconds=delay
        )

    def receive(self, max_messages: int = 10, wait_seconds: int = 0) -> list[tuple[str, dict[str, Any]]]:
        """Up to `max_messages` messages with their receipt handles."""
        answer = self.client.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=wait_seconds
        )
        return [(m["ReceiptHandle"], json.loads(m["Body"])) for m in answer.get("Messages", [])]

    def done(self, receipt: str) -> None:
        self.client.delete_message(QueueUrl=self.url, ReceiptHandle=receipt)


class MeteringQueue(Queue):
    setting = "metering_queue"

    def park(self, record: dict[str, Any]) -> None:
        self.send(record)


class DeliveriesQueue(Queue):
    setting = "deliveries_queue"


class IngestQueue(Queue):
    """Documents of knowledge indexes waiting for the ingestion worker (parley.services.indexes)."""

    setting = "ingest_queue"
