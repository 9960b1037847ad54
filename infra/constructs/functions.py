"""RouteFunctions: one Lambda function per function directory of the route table (routes that share a
directory share a function), plus the authorizer. Nothing here is written per route."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from infra.constructs.function import ParleyFunction, ParleyLayers
from infra.constructs.queues import ParleyQueues
from infra.constructs.resources import (  # re-exported: the events stack and the tests name them here
    BEDROCK,
    BEDROCK_ACTIONS,
    SECRET_ACTIONS,
    SECRET_READ_ACTIONS,
    SECRETS,
    SECRETS_READ,
    ResourceKinds,
    grant_bedrock,
    grant_provider_secrets,
    shared_kinds,
)
from infra.constructs.search import ParleySearch, ParleySearchAccess
from infra.constructs.tables import ACCESS_ACTIONS, ParleyTables, pascal_case
from infra.stages import Stage
from parley.api.cors import CorsConfig
from parley.api.routing import Route, RouteTable

__all__ = [
    "BEDROCK",
    "BEDROCK_ACTIONS",
    "SECRETS",
    "SECRETS_READ",
    "SECRET_ACTIONS",
    "SECRET_READ_ACTIONS",
    "FunctionPlan",
    "RouteFunctions",
    "base_environment",
    "function_group",
    "grant_bedrock",
    "grant_provider_secrets",
    "plan_functions",
    "strongest",
]

# API Gateway answers 504 after 29 s on a buffered integration; a streamed one may last 15 min.
BUFFERED_LIMIT_S = 29
STREAMING_LIMIT_S = 900
STREAM_WRAPPER = "/opt/parley-stream"
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


def function_group(plan: FunctionPlan) -> str:
    """The group a route function belongs to (its alarms, its reserved concurrency): "streaming"
    for streamed routes, "api" for the others; the authorizer, the scheduled jobs and the consumers
    have groups of their own (infra.stages.FUNCTION_GROUPS)."""
    return "streaming" if plan.streaming else "api"


def base_environment(stage: str, *, log_content: bool = False, cors: CorsConfig | None = None) -> dict[str, str]:
    environment = {
        "PARLEY_STAGE": stage,
        "POWERTOOLS_SERVICE_NAME": "parley",
        "POWERTOOLS_METRICS_NAMESPACE": "Parley",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        # Responses carry conversation content: keep them out of X-Ray trace metadata.
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    }
    if log_content:  # request bodies in the logs, for debugging a stage (never the headers, never keys)
        environment["PARLEY_LOG_CONTENT"] = "true"
    if cors is not None and cors.enabled:  # the origins a browser's actual requests are answered for
        environment["PARLEY_CORS_ALLOW_ORIGINS"] = ",".join(cors.allow_origins)
    return environment


class RouteFunctions(Construct):
    """`functions[name]` for each function directory in the route table, `scheduled[name]` for each
    scheduled job, and `authorizer`. What a function gets from the resources its routes name comes
    from one table of kinds (infra.constructs.resources); the functions naming "search" are the
    principals of this stack's data access policy on the search collection (`search_access`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: Stage,
        route_table: RouteTable,
        tables: ParleyTables,
        queues: ParleyQueues,
        search: ParleySearch,
        layers: ParleyLayers,
    ) -> None:
        super().__init__(scope, construct_id)
        config, stage_name = stage, stage.name
        log_retention = config.log_retention
        # the same context as the api stack's preflight (cors_allow_origins): the functions add the
        # CORS headers of the actual requests, which API Gateway's proxy integrations do not
        origins = self.node.try_get_context("cors_allow_origins")
        cors = CorsConfig.from_origins(origins) if origins else None
        environment_base = base_environment(stage_name, log_content=config.log_content, cors=cors)
        self.search_access = ParleySearchAccess(self, "SearchAccess", search=search, suffix="fn")
        self.kinds: ResourceKinds = shared_kinds(
            stage=stage_name, tables=tables, queues=queues, search=search, search_access=self.search_access
        )
        self.plans: dict[str, FunctionPlan] = {}
        self.functions: dict[str, ParleyFunction] = {}
        for plan in plan_functions(route_table):
            self.kinds.check(plan.name, plan.resources)
            environment = environment_base | self.kinds.environment(plan.resources)
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
                group=function_group(plan),
                reserved_concurrency=config.reserved_concurrency.get(function_group(plan)),
            )
            self.kinds.grant(function, plan.resources)
            self.plans[plan.name] = plan
            self.functions[plan.name] = function

        self.scheduled: dict[str, ParleyFunction] = {}
        for job in route_table.scheduled:
            resources = strongest(set(job.resources))
            self.kinds.check(job.function, resources)
            function = ParleyFunction(
                self,
                pascal_case(job.function),
                code_dir=route_table.root / job.function,
                description=f"Parley scheduled: {job.description}"[:256],
                layers=layers,
                environment=environment_base | self.kinds.environment(resources),
                memory_mb=job.memory_mb,
                timeout=Duration.seconds(job.timeout_seconds),
                log_retention=log_retention,
                group="scheduled",
                reserved_concurrency=config.reserved_concurrency.get("scheduled"),
            )
            self.kinds.grant(function, resources)
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
            environment=environment_base | dict(tables.table_names(["keys", "chats"])),
            memory_mb=AUTHORIZER_MEMORY_MB,
            timeout=Duration.seconds(AUTHORIZER_TIMEOUT_S),
            log_retention=log_retention,
            group="authorizer",
            reserved_concurrency=config.reserved_concurrency.get("authorizer"),
        )
        tables.grant_read_data(self.authorizer.function, "keys")
        # the key's project (its limits) and the key's last_used_at
        tables.grant_data(self.authorizer.function, "chats", ":update")

    def for_route(self, route: Route) -> ParleyFunction:
        return self.functions[route.function]
