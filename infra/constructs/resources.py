"""Resource kinds: what a resource named in the route table (by a route, a scheduled job or a
consumer) gives the function that names it: its settings (environment variables) and its grants.

One table of kinds serves every function of every stack; a stack adds the kinds of resources it
owns (the events stack: its bus and its queues). A function naming a kind the table lacks fails the
synth, so a new kind in functions/routes.py cannot go unnoticed by CDK.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial

from aws_cdk import ArnFormat, Aws, Stack
from aws_cdk import aws_iam as iam

from infra.constructs.cursors import CURSORS, cursor_secret_name, grant_cursor_key
from infra.constructs.documents import DOCUMENTS, DOCUMENTS_READ, documents_bucket_name, grant_documents
from infra.constructs.function import ParleyFunction, acknowledge
from infra.constructs.queues import METERING, METERING_CONSUME, ParleyQueues
from infra.constructs.search import INGEST, SEARCH, ParleySearch, ParleySearchAccess
from infra.constructs.tables import ACCESS_ACTIONS, ParleyTables

Grant = Callable[[ParleyFunction], object]  # what it returns (an iam.Grant, say) is not used

# The route resource that stands for the provider API keys in Secrets Manager, which
# parley.storage.secrets names parley/<stage>/<project>/providers/<provider> at run time.
SECRETS = "secrets"  # read and write (provider CRUD)
SECRETS_READ = "secrets:read"  # read only (model calls)
SECRET_READ_ACTIONS = ("secretsmanager:GetSecretValue",)
SECRET_ACTIONS = (
    "secretsmanager:CreateSecret",
    "secretsmanager:TagResource",  # CreateSecret with Tags
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:DeleteSecret",
)
# Model calls through the Bedrock provider (Converse and ConverseStream, which IAM authorizes as
# InvokeModel and InvokeModelWithResponseStream), on foundation models and inference profiles.
BEDROCK = "bedrock"
BEDROCK_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")


@dataclass(frozen=True)
class Kind:
    """What one resource kind gives a function: settings, and a grant applied to the function."""

    grant: Grant
    environment: Mapping[str, str] = field(default_factory=dict)


class ResourceKinds:
    def __init__(self, kinds: Mapping[str, Kind]) -> None:
        self.kinds = dict(kinds)

    def with_(self, more: Mapping[str, Kind]) -> ResourceKinds:
        return ResourceKinds({**self.kinds, **more})

    def check(self, function: str, resources: Iterable[str]) -> None:
        unknown = sorted(set(resources) - set(self.kinds))
        if unknown:
            raise ValueError(f"functions/{function}: unknown resources {unknown}; known: {sorted(self.kinds)}")

    def environment(self, resources: Iterable[str]) -> dict[str, str]:
        environment: dict[str, str] = {}
        for resource in sorted(set(resources)):
            environment |= self.kinds[resource].environment
        return environment

    def grant(self, function: ParleyFunction, resources: Iterable[str]) -> None:
        for resource in sorted(set(resources)):
            self.kinds[resource].grant(function)


def _table_grant(tables: ParleyTables, logical: str, access: str, function: ParleyFunction) -> None:
    tables.grant_data(function.function, logical, access)


def _metering_grant(queues: ParleyQueues, resource: str, function: ParleyFunction) -> None:
    queues.grant(function.function, resource)


def _documents_grant(stage: str, write: bool, function: ParleyFunction) -> None:
    grant_documents(function, stage, write=write)


def shared_kinds(
    *,
    stage: str,
    tables: ParleyTables,
    queues: ParleyQueues,
    search: ParleySearch,
    search_access: ParleySearchAccess,
) -> ResourceKinds:
    """The kinds of the data and search stacks' resources and of the stage's secrets and models.

    Tables: "<table>" reads and writes its items, "<table>:update" and "<table>:read" less
    (infra.constructs.tables.ACCESS_ACTIONS). "secrets" / "secrets:read": the provider-key secrets;
    "documents" / "documents:read": the documents bucket's objects; "bedrock": model invocation;
    "metering": send to the metering queue, "metering:consume": receive from it; "cursors": the
    cursor-signing key; "search": the search collection (IAM and its data access policy);
    "ingest": send to the ingest queue.
    """
    kinds: dict[str, Kind] = {}
    for logical in tables.tables:
        for access in ACCESS_ACTIONS:
            kinds[f"{logical}{access}"] = Kind(
                grant=partial(_table_grant, tables, logical, access),
                environment=dict(tables.table_names([logical])),
            )
    kinds[SECRETS] = Kind(grant=lambda f: grant_provider_secrets(f, stage, SECRET_ACTIONS))
    kinds[SECRETS_READ] = Kind(grant=lambda f: grant_provider_secrets(f, stage, SECRET_READ_ACTIONS))
    bucket = {"PARLEY_DOCUMENTS_BUCKET": documents_bucket_name(stage)}
    kinds[DOCUMENTS] = Kind(grant=partial(_documents_grant, stage, True), environment=bucket)
    kinds[DOCUMENTS_READ] = Kind(grant=partial(_documents_grant, stage, False), environment=bucket)
    kinds[BEDROCK] = Kind(grant=grant_bedrock)
    metering = {"PARLEY_METERING_QUEUE": queues.metering.queue_url}
    kinds[METERING] = Kind(grant=partial(_metering_grant, queues, METERING), environment=metering)
    kinds[METERING_CONSUME] = Kind(grant=partial(_metering_grant, queues, METERING_CONSUME), environment=metering)
    kinds[CURSORS] = Kind(
        grant=lambda f: grant_cursor_key(f, stage), environment={"PARLEY_CURSOR_SECRET": cursor_secret_name(stage)}
    )
    kinds[SEARCH] = Kind(grant=search_access.grant, environment={"PARLEY_SEARCH_ENDPOINT": search.endpoint})
    kinds[INGEST] = Kind(grant=search.grant_ingest, environment={"PARLEY_INGEST_QUEUE": search.ingest_queue.queue_url})
    return ResourceKinds(kinds)


def grant_provider_secrets(function: ParleyFunction, stage: str, actions: tuple[str, ...]) -> None:
    """Access to the stage's provider-key secrets (their names are only known at run time)."""
    prefix = f"parley/{stage}/"
    arn = Stack.of(function).format_arn(
        service="secretsmanager",
        resource="secret",
        resource_name=f"{prefix}*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    iam.Grant.add_to_principal(grantee=function.function, actions=list(actions), resource_arns=[arn])
    acknowledge(
        function,
        f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>"
        f":secret:{prefix}*]",
        f"One secret per AI provider, created at run time under {prefix}<project>/providers/<id> (names "
        "unknown at deploy time); the wildcard is limited to this stage's prefix.",
    )


def grant_bedrock(function: ParleyFunction) -> None:
    """Model invocation on Bedrock: any foundation model, in any region (a cross-region inference
    profile routes a call to the model in another region, and IAM checks it there), and the
    account's inference profiles, system-defined and application ones, in any region (a provider
    record may name another region than the function's)."""
    stack = Stack.of(function)
    arns = [f"arn:{Aws.PARTITION}:bedrock:*::foundation-model/*"] + [
        stack.format_arn(
            service="bedrock",
            region="*",
            resource=kind,
            resource_name="*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        for kind in ("inference-profile", "application-inference-profile")
    ]
    iam.Grant.add_to_principal(grantee=function.function, actions=list(BEDROCK_ACTIONS), resource_arns=arns)
    reasons = {
        "arn:<AWS::Partition>:bedrock:*::foundation-model/*": "The model is the provider record's choice, "
        "made at run time; a cross-region inference profile needs the model in every region it routes to.",
        "arn:<AWS::Partition>:bedrock:*:<AWS::AccountId>:inference-profile/*": "Inference profiles are chosen "
        "by provider records at run time; limited to this account's profiles.",
        "arn:<AWS::Partition>:bedrock:*:<AWS::AccountId>:application-inference-profile/*": "Application "
        "inference profiles are chosen by provider records at run time; limited to this account's profiles.",
    }
    for resource, reason in reasons.items():
        acknowledge(
            function, f"AwsSolutions-IAM5[Resource::{resource}]", f"{reason} Actions: {', '.join(BEDROCK_ACTIONS)}."
        )
