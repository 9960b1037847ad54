"""The search stack: the OpenSearch Serverless collection (knowledge chunks and message search) with
its encryption and network policies, and the ingest queue (documents of knowledge indexes waiting
for the index_ingest worker) with its dead-letter queue and an alarm on it.

The functions that use them live in the api and events stacks, which take the collection's endpoint
and ARN and the queue from here (cross-stack references: this stack depends on none of them). Each
of those stacks holds the data access policy naming its own functions' roles
(infra.constructs.search.ParleySearchAccess), so no reference points back here.

The stage (infra.stages.Stage) says whether the collection has standby replicas
(`search_standby_replicas`) and is kept, with deletion protection, when the stack is deleted
(`search_retain`): both on for production stages only, by default. With the stage's alarms on, the
ingest dead-letter queue's alarm notifies the stage's alarm topic.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.constructs.alarms import notify
from infra.constructs.function import acknowledge
from infra.constructs.queues import dead_letter_alarm
from infra.constructs.search import ParleySearch
from infra.stages import PRODUCTION_STAGE, Stage, flag
from parley.api.routing import RouteTable

__all__ = ["COLLECTION_ENDPOINT_OUTPUT", "INGEST_QUEUE_OUTPUT", "PRODUCTION_STAGE", "SearchStack", "context_flag"]

COLLECTION_ENDPOINT_OUTPUT = "SearchCollectionEndpoint"
INGEST_QUEUE_OUTPUT = "IngestQueueUrl"


def context_flag(value: object, default: bool) -> bool:
    """A boolean from CDK context, which the CLI passes as a string (-c key=false)."""
    return flag(value, default)


class SearchStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, stage: Stage, route_table: RouteTable, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.search = ParleySearch(
            self,
            "Search",
            stage=stage.name,
            route_table=route_table,
            standby_replicas=stage.search_standby_replicas,
            retain=stage.search_retain,
        )
        acknowledge(
            self.search.ingest_dlq,
            "AwsSolutions-SQS3",
            "This queue is a dead-letter queue: the ingest queue's redrive target.",
        )
        if stage.alarms:
            notify(
                dead_letter_alarm(
                    self,
                    "IngestQueueDeadLettersAlarm",
                    queue=self.search.ingest_dlq,
                    description=f"Parley {stage.name}: documents are waiting in the ingest dead-letter queue",
                ),
                stage.name,
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
