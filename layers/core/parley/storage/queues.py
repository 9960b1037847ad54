"""SQS queues Parley parks work in: the metering queue holds usage records DynamoDB would not
take, until the sweep folds them into the counters."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from parley.aws import clients
from parley.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class MeteringQueue:
    def __init__(self, client: SQSClient | None = None, queue: str | None = None) -> None:
        self._client = client
        self._queue = queue

    @property
    def client(self) -> SQSClient:
        return self._client or clients().sqs

    @property
    def url(self) -> str:
        """The queue's URL: given as one by CDK, or looked up by name (locally; parking is rare)."""
        queue = self._queue or get_settings().metering_queue
        if queue.startswith(("https://", "http://")):
            return queue
        return str(self.client.get_queue_url(QueueName=queue)["QueueUrl"])

    def park(self, record: dict[str, Any]) -> None:
        self.client.send_message(QueueUrl=self.url, MessageBody=json.dumps(record, separators=(",", ":")))

    def receive(self, max_messages: int = 10, wait_seconds: int = 0) -> list[tuple[str, dict[str, Any]]]:
        """Up to `max_messages` parked records with their receipt handles."""
        answer = self.client.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=wait_seconds
        )
        return [(m["ReceiptHandle"], json.loads(m["Body"])) for m in answer.get("Messages", [])]

    def done(self, receipt: str) -> None:
        self.client.delete_message(QueueUrl=self.url, ReceiptHandle=receipt)
