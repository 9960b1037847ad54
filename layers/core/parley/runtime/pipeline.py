"""The local server's event source mappings: the route table's consumers (`RouteTable.consumers`)
fed as Lambda feeds them, in the same execution environments as the routes.

A `stream` consumer gets its tables' DynamoDB stream records in order, in batches, with the
event shape Lambda's mapping delivers; a reported failure (batchItemFailures) or an error
redelivers from the first failed record, after a backoff, up to the consumer's `max_attempts`;
then that record is parked on the consumer's dead-letter queue (where the mapping's bisecting
and on-failure destination end up) and the stream goes on with the records after it.

A `queue` consumer gets its queues' messages (SQS's event shape); what it reports as failed (or
all of a batch that raised) is left on the queue and comes back after its visibility timeout,
as on AWS.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from parley.api.routing import Consumer

if TYPE_CHECKING:
    from parley.aws import Clients
    from parley.settings import Settings

log = logging.getLogger("parley.local.pipeline")
Invoke = Callable[[str, dict[str, Any], float], Any]
VISIBILITY_SECONDS = 30  # a failed queue message comes back after this (or the consumer's timeout)


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A DynamoDB Streams API record as Lambda's event source mapping delivers it (boto3 parses
    ApproximateCreationDateTime; Lambda sends epoch seconds)."""
    images = dict(record.get("dynamodb", {}))
    at = images.get("ApproximateCreationDateTime")
    if isinstance(at, datetime):
        images["ApproximateCreationDateTime"] = int(at.timestamp())
    return {**record, "dynamodb": images, "eventSourceARN": stream_arn}


@dataclass
class Shard:
    stream_arn: str
    shard_id: str
    last: str | None = None  # the sequence number of the last record read
    pending: list[dict[str, Any]] = field(default_factory=list)  # read, not yet delivered
    attempts: int = 0
    retry_at: float = 0.0


@dataclass
class StreamSource:
    """One table's stream, read shard by shard from the start (TRIM_HORIZON), then after the last
    record read. A new iterator for every read: moto restores a table (and its stream) after a
    cancelled transaction, and an old iterator would still see the cancelled writes' records,
    which real DynamoDB never streams."""

    aws: Clients
    table: str
    shards: dict[str, Shard] = field(default_factory=dict)
    refreshed_at: float | None = None

    def refresh(self, every: float = 0.0) -> None:
        """Look for new shards (at most every `every` seconds: the emulation serves one call at a time)."""
        now = time.monotonic()
        if self.refreshed_at is not None and now - self.refreshed_at < every:
            return
        self.refreshed_at = now
        streams = self.aws.dynamodbstreams.list_streams(TableName=self.table).get("Streams", [])
        for stream in streams:
            arn = stream["StreamArn"]
            description = self.aws.dynamodbstreams.describe_stream(StreamArn=arn)["StreamDescription"]
            for shard in description.get("Shards", []):
                key = f"{arn}#{shard['ShardId']}"
                if key not in self.shards:
                    self.shards[key] = Shard(arn, shard["ShardId"])

    def read(self, shard: Shard, limit: int) -> None:
        """Read new records onto the shard's pending list."""
        if len(shard.pending) >= limit:
            return
        streams = self.aws.dynamodbstreams
        if shard.last is None:
            iterator = streams.get_shard_iterator(
                StreamArn=shard.stream_arn, ShardId=shard.shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        else:
            iterator = streams.get_shard_iterator(
                StreamArn=shard.stream_arn,
                ShardId=shard.shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                SequenceNumber=shard.last,
            )["ShardIterator"]
        records = streams.get_records(ShardIterator=iterator, Limit=1000).get("Records", [])
        if records:
            shard.pending += [lambda_record(dict(r), shard.stream_arn) for r in records]
            shard.last = str(records[-1]["dynamodb"]["SequenceNumber"])


@dataclass
class Pipeline:
    consumers: tuple[Consumer, ...]
    invoke: Invoke
    aws: Clients
    settings: Settings
    poll_seconds: float = 0.5  # between passes that found nothing (Lambda polls a stream 4 times a second)
    busy_seconds: float = 0.05  # between passes that delivered something
    refresh_seconds: float = 30.0  # how often the streams' shards are listed again
    backoff_seconds: float = 1.0  # first redelivery delay of a failing stream batch (doubling)
    delivered: dict[str, int] = field(default_factory=dict)  # records / messages handed to each consumer
    parked: dict[str, int] = field(default_factory=dict)  # stream records sent to a dead-letter queue
    errors: dict[str, int] = field(default_factory=dict)
    _streams: dict[str, list[StreamSource]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        if self.consumers:
            self._thread = threading.Thread(target=self._loop, name="parley-pipeline", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy = self.run_once()
            self._stop.wait(self.busy_seconds if busy else self.poll_seconds)

    def run_once(self) -> bool:
        """One pass over every consumer's sources; whether anything was delivered."""
        busy = False
        with self._lock:
            for consumer in self.consumers:
                try:
                    busy |= self._stream(consumer) if consumer.kind == "stream" else self._queue(consumer)
                except Exception as exc:  # noqa: BLE001 - counted and logged; the next pass retries
                    self.errors[consumer.function] = self.errors.get(consumer.function, 0) + 1
                    log.error("pipeline %s failed: %s: %s", consumer.function, type(exc).__name__, exc)
        return busy

    def drain(self, timeout: float = 30.0) -> None:
        """Run passes until a pass delivers nothing (tests: everything committed has flowed)."""
        deadline = time.monotonic() + timeout
        while self.run_once():
            if time.monotonic() > deadline:
                raise TimeoutError("the pipeline did not drain")

    # --- streams --------------------------------------------------------------------------------

    def _stream(self, consumer: Consumer) -> bool:
        sources = self._streams.get(consumer.function)
        if sources is None:
            sources = [StreamSource(self.aws, self.settings.table(t)) for t in consumer.sources]
            self._streams[consumer.function] = sources
        busy = False
        for source in sources:
            source.refresh(self.refresh_seconds)
            for shard in source.shards.values():
                source.read(shard, consumer.batch_size)
                if shard.pending and time.monotonic() >= shard.retry_at:
                    self._deliver(consumer, shard)
                    busy = True
        return busy

    def _deliver(self, consumer: Consumer, shard: Shard) -> None:
        batch = shard.pending[: consumer.batch_size]
        try:
            invocation = self.invoke(consumer.function, {"Records": batch}, float(consumer.timeout_seconds))
            result = getattr(invocation, "result", invocation) or {}
            failures = [str(f["itemIdentifier"]) for f in result.get("batchItemFailures", [])]
        except Exception as exc:  # noqa: BLE001 - the whole batch is redelivered, as Lambda does
            log.error("stream consumer %s raised: %s: %s", consumer.function, type(exc).__name__, exc)
            failures = [str(batch[0]["dynamodb"]["SequenceNumber"])]
        self.delivered[consumer.function] = self.delivered.get(consumer.function, 0) + len(batch)
        if not failures:
            del shard.pending[: len(batch)]
            shard.attempts = 0
            return
        first = min(int(s) for s in failures)
        done = [r for r in batch if int(r["dynamodb"]["SequenceNumber"]) < first]
        del shard.pending[: len(done)]  # checkpointed; the rest comes again
        shard.attempts = 1 if done else shard.attempts + 1
        if shard.attempts >= consumer.max_attempts:
            # where bisecting ends on AWS: the record that keeps failing, alone, goes to the
            # destination; the records after it are delivered again
            self._park(consumer, shard, shard.pending[:1])
            del shard.pending[:1]
            shard.attempts = 0
            return
        shard.retry_at = time.monotonic() + self.backoff_seconds * 2 ** (shard.attempts - 1)

    def _park(self, consumer: Consumer, shard: Shard, records: list[dict[str, Any]]) -> None:
        """What the mapping's on-failure destination receives: where the batch is, not the records."""
        queue = self._queue_url(consumer.dead_letter or f"{consumer.function}-failures")
        body = {
            "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": consumer.function},
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
                "batchSize": len(records),
                "streamArn": shard.stream_arn,
            },
        }
        self.aws.sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(body))
        self.parked[consumer.function] = self.parked.get(consumer.function, 0) + len(records)
        log.error("stream consumer %s: %d records parked on %s", consumer.function, len(records), queue)

    # --- queues ---------------------------------------------------------------------------------

    def _queue_url(self, logical: str) -> str:
        name = str(getattr(self.settings, logical, logical))
        if name.startswith(("https://", "http://")):
            return name
        return self.aws.sqs.create_queue(QueueName=name)["QueueUrl"]  # the existing queue's URL when it exists

    def _queue(self, consumer: Consumer) -> bool:
        busy = False
        for logical in consumer.sources:
            url = self._queue_url(logical)
            answer = self.aws.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=consumer.batch_size,
                VisibilityTimeout=max(VISIBILITY_SECONDS, consumer.timeout_seconds),
                AttributeNames=["All"],
            )
            messages = answer.get("Messages", [])
            if not messages:
                continue
            busy = True
            arn = f"arn:aws:sqs:{self.settings.region}:000000000000:{url.rsplit('/', 1)[-1]}"
            records = [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": self.settings.region,
                }
                for m in messages
            ]
            try:
                invocation = self.invoke(consumer.function, {"Records": records}, float(consumer.timeout_seconds))
                result = getattr(invocation, "result", invocation) or {}
                failed = {str(f["itemIdentifier"]) for f in result.get("batchItemFailures", [])}
            except Exception as exc:  # noqa: BLE001 - the batch stays on the queue and comes back
                log.error("queue consumer %s raised: %s: %s", consumer.function, type(exc).__name__, exc)
                failed = {m["MessageId"] for m in messages}
            self.delivered[consumer.function] = self.delivered.get(consumer.function, 0) + len(messages)
            done = [m for m in messages if m["MessageId"] not in failed]
            for start in range(0, len(done), 10):
                chunk = done[start : start + 10]
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
                answer_delete = self.aws.sqs.delete_message_batch(QueueUrl=url, Entries=entries)  # type: ignore[arg-type]
                if answer_delete.get("Failed"):  # they come back after the visibility timeout; consumers are idempotent
                    self.errors[consumer.function] = self.errors.get(consumer.function, 0) + 1
                    log.error("queue %s: %d processed messages not deleted", url, len(answer_delete["Failed"]))
        return busy
