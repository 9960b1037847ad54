"""RouteFunctions: one Lambda function per function directory of the route table (routes that share a
directory share a function), plus the authorizer. Nothing here is written per route."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Aws, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constructs.cursors import CURSORS, cursor_secret_name, grant_cursor_key
from infra.constructs.documents import DOCUMENTS, DOCUMENTS_READ, documents_bucket_name, grant_documents
from infra.constructs.function import ParleyFunction, ParleyLayers, acknowledge
from infra.constructs.queues import METERING, METERING_CONSUME, ParleyQueues
from infra.constructs.tables import ACCESS_ACTIONS, ParleyTables, pascal_case, table_access, table_resources
from parley.api.routing import Route, RouteTable

# API Gateway answers 504 after 29 s on a buffered integration; a streamed one may last 15 min.
BUFFERED_LIMIT_S = 29
STREAMING_LIMIT_S = 900
STREAM_WRAPPER = "/opt/parley-stream"
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
AUTHORIZER_MEMORY_MB = 512
AUTHORIZER_TIMEOUT_S = 10


@dataclass(frozen=True)
class FunctionPlan:
    """What the routes served by one function directory need from that function."""

    name: str  # the directory under functions/
    routes: tuple[Route, ...]
    streaming: bool
    resources: tuple[str, ...]
    timeout_seconds: int
    memory_mb: int

    @property
    def description(self) -> str:
        return "Parley " + ", ".join(f"{r.method} {r.path}" for r in self.routes)


def plan_functions(table: RouteTable) -> list[FunctionPlan]:
    """Group the routes by function directory and check what API Gateway can serve."""
    plans = []
    for name in table.functions():
        routes = tuple(r for r in table.routes if r.function == name)
        modes = {r.streaming for r in routes}
        if len(modes) > 1:
            raise ValueError(
                f"functions/{name} serves streamed and buffered routes; the streaming wrapper applies "
                "to the whole function, so give the streamed routes their own function"
            )
        streaming = modes.pop()
        limit = STREAMING_LIMIT_S if streaming else BUFFERED_LIMIT_S
        for route in routes:
            if not 1 <= route.timeout_seconds <= limit:
                kind = "streamed" if streaming else "buffered"
                raise ValueError(
                    f"{route.method} {route.path}: timeout {route.timeout_seconds} s; a {kind} route "
                    f"allows 1..{limit} s"
                )
        plans.append(
            FunctionPlan(
                name=name,
                routes=routes,
                streaming=streaming,
                resources=strongest({res for r in routes for res in r.resources}),
                # A streamed route's function lives as long as API Gateway holds the stream (15 min):
                # stopping earlier would cut the stream without an SSE error event.
                timeout_seconds=STREAMING_LIMIT_S if streaming else max(r.timeout_seconds for r in routes),
                memory_mb=max(r.memory_mb for r in routes),
            )
        )
    return plans


def strongest(resources: set[str]) -> tuple[str, ...]:
    """The resources a function's routes name together, sorted; of "x", "x:update" and "x:read"
    named together only the one granting most stays (tables, secrets and documents alike)."""
    rank = {access: n for n, access in enumerate(ACCESS_ACTIONS)}  # "" (read and write) first

    def level(resource: str) -> tuple[str, int]:
        base, colon, kind = resource.partition(":")
        return (base, rank[colon + kind]) if colon + kind in rank else (resource, 0)

    best: dict[str, str] = {}
    for resource in resources:
        key, n = level(resource)
        if key not in best or n < level(best[key])[1]:
            best[key] = resource
    return tuple(sorted(best.values()))


def base_environment(stage: str) -> dict[str, str]:
    return {
        "PARLEY_STAGE": stage,
        "POWERTOOLS_SERVICE_NAME": "parley",
        "POWERTOOLS_METRICS_NAMESPACE": "Parley",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        # Responses carry conversation content: keep them out of X-Ray trace metadata.
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    }


class RouteFunctions(Construct):
    """`functions[name]` for each function directory in the route table, and `authorizer`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        route_table: RouteTable,
        tables: ParleyTables,
        queues: ParleyQueues,
        layers: ParleyLayers,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, construct_id)
        self.plans: dict[str, FunctionPlan] = {}
        self.functions: dict[str, ParleyFunction] = {}
        known = {
            *table_resources(tables.tables),
            SECRETS,
            SECRETS_READ,
            DOCUMENTS,
            DOCUMENTS_READ,
            BEDROCK,
            METERING,
            CURSORS,
        }
        for plan in plan_functions(route_table):
            unknown = sorted(set(plan.resources) - known)
            if unknown:
                raise ValueError(f"functions/{plan.name}: unknown resources {unknown}; known: {sorted(known)}")
            table_grants = [access for r in plan.resources if (access := table_access(r, tables.tables))]
            environment = base_environment(stage) | dict(tables.table_names(t for t, _ in table_grants))
            if DOCUMENTS in plan.resources or DOCUMENTS_READ in plan.resources:
                environment["PARLEY_DOCUMENTS_BUCKET"] = documents_bucket_name(stage)
            if METERING in plan.resources:
                environment["PARLEY_METERING_QUEUE"] = queues.metering.queue_url
            if CURSORS in plan.resources:
                environment["PARLEY_CURSOR_SECRET"] = cursor_secret_name(stage)
            if plan.streaming:
                environment["AWS_LAMBDA_EXEC_WRAPPER"] = STREAM_WRAPPER
            function = ParleyFunction(
                self,
                pascal_case(plan.name),
                code_dir=route_table.root / plan.name,
                description=plan.description,
                layers=layers,
                environment=environment,
                memory_mb=plan.memory_mb,
                timeout=Duration.seconds(plan.timeout_seconds),
                log_retention=log_retention,
            )
            for logical, access in table_grants:
                tables.grant_data(function.function, logical, access)
            if DOCUMENTS in plan.resources or DOCUMENTS_READ in plan.resources:
                grant_documents(function, stage, write=DOCUMENTS in plan.resources)
            if SECRETS in plan.resources:
                grant_provider_secrets(function, stage, SECRET_ACTIONS)
            elif SECRETS_READ in plan.resources:
                grant_provider_secrets(function, stage, SECRET_READ_ACTIONS)
            if METERING in plan.resources:
                queues.grant(function.function, METERING)
            if CURSORS in plan.resources:
                grant_cursor_key(function, stage)
            if BEDROCK in plan.resources:
                grant_bedrock(function)
            self.plans[plan.name] = plan
            self.functions[plan.name] = function

        self.scheduled: dict[str, ParleyFunction] = {}
        for job in route_table.scheduled:
            job_tables = [r for r in job.resources if r in tables.tables]
            unknown = sorted(set(job.resources) - {*tables.tables, METERING, METERING_CONSUME})
            if unknown:
                raise ValueError(f"functions/{job.function}: unknown resources {unknown}")
            environment = base_environment(stage) | dict(tables.table_names(job_tables))
            if METERING_CONSUME in job.resources:
                environment["PARLEY_METERING_QUEUE"] = queues.metering.queue_url
            function = ParleyFunction(
                self,
                pascal_case(job.function),
                code_dir=route_table.root / job.function,
                description=f"Parley scheduled: {job.description}"[:256],
                layers=layers,
                environment=environment,
                memory_mb=job.memory_mb,
                timeout=Duration.seconds(job.timeout_seconds),
                log_retention=log_retention,
            )
            for logical in job_tables:
                tables.grant_data(function.function, logical)
            if METERING_CONSUME in job.resources:
                queues.grant(function.function, METERING_CONSUME)
            events.Rule(
                self,
                f"{pascal_case(job.function)}Schedule",
                schedule=events.Schedule.rate(Duration.minutes(job.every_minutes)),
                targets=[targets.LambdaFunction(function.function, retry_attempts=0)],
            )
            self.scheduled[job.function] = function

        self.authorizer = ParleyFunction(
            self,
            pascal_case(route_table.authorizer),
            code_dir=route_table.root / route_table.authorizer,
            description="Parley API key authorizer",
            layers=layers,
            environment=base_environment(stage) | dict(tables.table_names(["keys", "chats"])),
            memory_mb=AUTHORIZER_MEMORY_MB,
            timeout=Duration.seconds(AUTHORIZER_TIMEOUT_S),
            log_retention=log_retention,
        )
        tables.grant_read_data(self.authorizer.function, "keys")
        # the key's project (its limits) and the key's last_used_at
        tables.grant_data(self.authorizer.function, "chats", ":update")

    def for_route(self, route: Route) -> ParleyFunction:
        return self.functions[route.function]


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
