"""The search engine: one OpenSearch Serverless collection per stage (knowledge chunks for RAG and the
message search index live in it, as indexes named by parley.search.opensearch under the stage's
prefix), its encryption and network policies, the ingest queue, and the data access that the
functions naming the "search" resource get.

OpenSearch Serverless authorizes a request twice: IAM (aoss:APIAccessAll on the collection) and the
collection's data access policies (which principals may do what on which indexes). A data access
policy names its principals by ARN, so it lives next to the roles it names: one per stack that has
functions with "search" (`ParleySearchAccess`), while the collection lives in the search stack. The
collection's name is derived from the stage, so those policies name it without a reference back.
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import IStableStringProducer, Lazy, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_opensearchserverless as aoss
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.function import ParleyFunction
from infra.constructs.queues import consumer_visibility, parley_queue
from parley.api.routing import RouteTable

SEARCH = "search"  # route resource: the collection's indexes (read and write documents, create indexes)
INGEST = "ingest"  # route resource: send to the ingest queue
INGEST_QUEUE = "ingest_queue"  # the logical queue the route table's index_ingest consumer reads
COLLECTION_TYPE = "VECTORSEARCH"  # k-NN (vector fields) and BM25 full text in the same index: hybrid
# What the data access policy lets a search function do on the collection's indexes. Documents are
# written (and deleted) by id or by query; indexes are created on first use with their mapping.
INDEX_PERMISSIONS = (
    "aoss:CreateIndex",
    "aoss:DescribeIndex",
    "aoss:UpdateIndex",
    "aoss:ReadDocument",
    "aoss:WriteDocument",
)
API_ACCESS_ACTIONS = ("aoss:APIAccessAll",)  # IAM: data plane requests to the collection's endpoint
INGEST_SEND_ACTIONS = ("sqs:SendMessage",)  # functions get the queue's URL, never look it up
# Collection names allow 3..64 characters and security and access policy names 3..32, [a-z][a-z0-9-]+.
MAX_POLICY_NAME = 32


def collection_name(stage: str) -> str:
    return f"parley-{stage}"


def policy_name(stage: str, suffix: str) -> str:
    name = f"parley-{stage}-{suffix}"
    if len(name) > MAX_POLICY_NAME:
        raise ValueError(f"policy name {name!r} is longer than {MAX_POLICY_NAME} characters")
    return name


class ParleySearch(Construct):
    """The collection, with its encryption policy (AWS-owned key), its network policy (public endpoint,
    IAM-authenticated; no Dashboards), and the ingest queue with its dead-letter queue.

    `standby_replicas`: a standby copy of the indexing and search capacity in another Availability Zone
    (production); without, the collection costs half (development). `retain`: keep the collection (and
    refuse its deletion) when the stack goes.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        route_table: RouteTable,
        standby_replicas: bool,
        retain: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stage = stage
        self.collection_name = collection_name(stage)
        resource = [f"collection/{self.collection_name}"]
        # AWS-owned key, like the tables (AWS managed key), queues (SQS managed) and bucket (S3
        # managed): encrypted at rest with no key to run; a customer managed key would add a key
        # policy, KMS charges, and (with a key of its own) a separate set of OCUs to pay for.
        self.encryption_policy = aoss.CfnSecurityPolicy(
            self,
            "EncryptionPolicy",
            name=policy_name(stage, "enc"),
            type="encryption",
            description=f"Parley {stage}: the search collection is encrypted with an AWS-owned key",
            policy=json.dumps({"Rules": [{"ResourceType": "collection", "Resource": resource}], "AWSOwnedKey": True}),
        )
        # The functions are not in a VPC, so the collection's endpoint is public; every request is
        # still signed (SigV4, IAM) and checked against the data access policies. No rule for the
        # Dashboards endpoint: it is not reachable at all.
        self.network_policy = aoss.CfnSecurityPolicy(
            self,
            "NetworkPolicy",
            name=policy_name(stage, "net"),
            type="network",
            description=f"Parley {stage}: the search collection's endpoint is public, IAM-authenticated; no Dashboards",
            policy=json.dumps(
                [
                    {
                        "Description": "Collection endpoint, SigV4-signed requests only",
                        "Rules": [{"ResourceType": "collection", "Resource": resource}],
                        "AllowFromPublic": True,
                    }
                ]
            ),
        )
        self.collection = aoss.CfnCollection(
            self,
            "Collection",
            name=self.collection_name,
            type=COLLECTION_TYPE,
            description=f"Parley {stage}: knowledge chunks (RAG) and message search",
            standby_replicas="ENABLED" if standby_replicas else "DISABLED",
            deletion_protection="ENABLED" if retain else "DISABLED",
        )
        # A collection can only be created once an encryption policy covers its name.
        self.collection.node.add_dependency(self.encryption_policy)
        self.collection.node.add_dependency(self.network_policy)
        self.collection.apply_removal_policy(RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY)

        visibility = consumer_visibility(route_table, INGEST_QUEUE)
        self.ingest_dlq = parley_queue(self, "IngestDeadLetters", visibility=visibility)
        self.ingest_queue = parley_queue(self, "IngestQueue", visibility=visibility, dlq=self.ingest_dlq)

    @property
    def endpoint(self) -> str:
        return self.collection.attr_collection_endpoint

    @property
    def collection_arn(self) -> str:
        return self.collection.attr_arn

    def grant_ingest(self, function: ParleyFunction) -> None:
        iam.Grant.add_to_principal(
            grantee=function.function,
            actions=list(INGEST_SEND_ACTIONS),
            resource_arns=[self.ingest_queue.queue_arn],
        )

    @property
    def queues(self) -> dict[str, sqs.IQueue]:
        """The queues consumers may name as sources, by logical name."""
        return {INGEST_QUEUE: self.ingest_queue}


@jsii.implements(IStableStringProducer)
class _PolicyDocument:
    def __init__(self, access: ParleySearchAccess) -> None:
        self._access = access

    def produce(self) -> str | None:
        return self._access.render()


class ParleySearchAccess(Construct):
    """The data access policy for the functions of one stack that name "search": exactly their roles,
    the index permissions on the collection's indexes. `grant(function)` adds a function's role (and
    its IAM aoss:APIAccessAll on the collection); the policy exists once a role was added."""

    def __init__(self, scope: Construct, construct_id: str, *, search: ParleySearch, suffix: str) -> None:
        super().__init__(scope, construct_id)
        self.search = search
        self.name = policy_name(search.stage, suffix)
        self.principals: list[str] = []
        self.policy: aoss.CfnAccessPolicy | None = None

    def grant(self, function: ParleyFunction) -> None:
        iam.Grant.add_to_principal(
            grantee=function.function,
            actions=list(API_ACCESS_ACTIONS),
            resource_arns=[self.search.collection_arn],
        )
        self.principals.append(function.role.role_arn)
        if self.policy is None:
            self.policy = aoss.CfnAccessPolicy(
                self,
                "Policy",
                name=self.name,
                type="data",
                description=f"Parley {self.search.stage}: the functions that use the search collection",
                policy=Lazy.string(_PolicyDocument(self)),
            )

    def render(self) -> str:
        document = [
            {
                "Description": "Parley functions naming the search resource in the route table",
                "Rules": [
                    {
                        "ResourceType": "index",
                        "Resource": [f"index/{self.search.collection_name}/*"],
                        "Permission": list(INDEX_PERMISSIONS),
                    }
                ],
                "Principal": list(self.principals),
            }
        ]
        return Stack.of(self).to_json_string(document)
