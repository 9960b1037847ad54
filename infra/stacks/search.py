"""The search stack: the OpenSearch Serverless collection (knowledge chunks and message search) with
its encryption and network policies, and the ingest queue (documents of knowledge indexes waiting
for the index_ingest worker) with its dead-letter queue and an alarm on it.

The functions that use them live in the api and events stacks, which take the collection's endpoint
and ARN and the queue from here (cross-stack references: this stack depends on none of them). Each
of those stacks holds the data access policy naming its own functions' roles
(infra.constructs.search.ParleySearchAccess), so no reference points back here.

Context: `search_standby_replicas` (default: on for the prod stage only) and `search_retain` (keep
the collection, with deletion protection, when the stack is deleted; default: prod only).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.constructs.function import acknowledge
from infra.constructs.queues import dead_letter_alarm
from infra.constructs.search import ParleySearch
from parley.api.routing import RouteTable

PRODUCTION_STAGE = "prod"
COLLECTION_ENDPOINT_OUTPUT = "SearchCollectionEndpoint"
INGEST_QUEUE_OUTPUT = "IngestQueueUrl"


def context_flag(value: object, default: bool) -> bool:
    """A boolean from CDK context, which the CLI passes as a string (-c key=false)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "on"}:
        return True
    if text in {"false", "0", "no", "off"}:
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


class SearchStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, stage: str, route_table: RouteTable, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        production = stage == PRODUCTION_STAGE
        self.search = ParleySearch(
            self,
            "Search",
            stage=stage,
            route_table=route_table,
            standby_replicas=context_flag(self.node.try_get_context("search_standby_replicas"), production),
            retain=context_flag(self.node.try_get_context("search_retain"), production),
        )
        acknowledge(
            self.search.ingest_dlq,
            "AwsSolutions-SQS3",
            "This queue is a dead-letter queue: the ingest queue's redrive target.",
        )
        dead_letter_alarm(
            self,
            "IngestQueueDeadLettersAlarm",
            queue=self.search.ingest_dlq,
            description=f"Parley {stage}: documents are waiting in the ingest dead-letter queue",
        )
        CfnOutput(
            self,
            COLLECTION_ENDPOINT_OUTPUT,
            value=self.search.endpoint,
            description="Endpoint of the search collection (PARLEY_SEARCH_ENDPOINT)",
        )
        CfnOutput(
            self,
            INGEST_QUEUE_OUTPUT,
            value=self.search.ingest_queue.queue_url,
            description="URL of the ingest queue (PARLEY_INGEST_QUEUE)",
        )
