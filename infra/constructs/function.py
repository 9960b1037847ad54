"""ParleyFunction: one Lambda function the Parley way (arm64, python3.13, both layers, X-Ray, its own
log group and its own role that can write only to that log group), and ParleyLayers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import jsii
from aws_cdk import Acknowledgment, Duration, IAspect, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64
HANDLER = "handler.lambda_handler"
ASSET_EXCLUDE = ["__pycache__", "*.pyc", "*.pyo"]


def acknowledge(scope: Construct, rule: str, reason: str) -> None:
    """Acknowledge a cdk-nag finding on `scope` and everything under it, with the reason."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


@jsii.implements(IAspect)
class InlineRolePolicies:
    """Each ParleyFunction's role gets its grants as an inline policy (the role's `Policies`)
    instead of a separate AWS::IAM::Policy resource: the same statements on the same role, one
    CloudFormation resource fewer per function, so the api stack stays under CloudFormation's 500
    resources per stack. Runs at synthesis, after every grant was made."""

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, iam.Role) or not isinstance(node.node.scope, ParleyFunction):
            return
        policy = node.node.try_find_child("DefaultPolicy")
        if not isinstance(policy, iam.Policy):
            return
        role = node.node.default_child
        assert isinstance(role, iam.CfnRole)
        role.add_property_override("Policies", [{"PolicyName": "parley-function", "PolicyDocument": policy.document}])
        node.node.try_remove_child("DefaultPolicy")


class ParleyLayers(Construct):
    """The core layer (parley package + /opt/parley-stream) and the dependency layer, from the
    directories `python -m infra.layers` builds."""

    def __init__(self, scope: Construct, construct_id: str, *, layers_dir: Path) -> None:
        super().__init__(scope, construct_id)
        core, deps = layers_dir / "core", layers_dir / "deps"
        missing = [
            str(p) for p in (core / "python" / "parley", core / "parley-stream", deps / "python") if not p.exists()
        ]
        if missing:
            raise FileNotFoundError(
                f"layers not built ({', '.join(missing)} missing): run `make layers` or `python -m infra.layers`"
            )
        self.core = lambda_.LayerVersion(
            self,
            "Core",
            code=lambda_.Code.from_asset(str(core), exclude=ASSET_EXCLUDE),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="Parley core package (/opt/python/parley) and streaming wrapper (/opt/parley-stream)",
        )
        self.deps = lambda_.LayerVersion(
            self,
            "Deps",
            code=lambda_.Code.from_asset(str(deps), exclude=ASSET_EXCLUDE),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="Parley runtime dependencies (pyproject.toml), arm64 CPython 3.13 wheels",
        )

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        return [self.core, self.deps]


class ParleyFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code_dir: Path,
        description: str,
        layers: ParleyLayers,
        environment: Mapping[str, str],
        memory_mb: int,
        timeout: Duration,
        log_retention: logs.RetentionDays,
        group: str = "api",
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.group = group  # infra.constructs.functions.function_group: alarms and reserved concurrency
        if not (code_dir / "handler.py").is_file():
            raise FileNotFoundError(f"{code_dir / 'handler.py'} does not exist")
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        # Its own role, without the AWSLambdaBasicExecutionRole managed policy (which may write to
        # any log group): it writes to its own log group only. Table grants come from the caller.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Parley function {code_dir.name}",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(code_dir), exclude=ASSET_EXCLUDE),
            layers=layers.all,
            environment=dict(environment),
            memory_size=memory_mb,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            role=self.role,
            log_group=self.log_group,
            description=description[:256],
            reserved_concurrent_executions=reserved_concurrency,
        )
        self.log_group.grant_write(self.role)

        acknowledge(
            self,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords (added by Tracing.ACTIVE) do not support "
            "resource-level permissions; AWS documents Resource '*' for them.",
        )
        acknowledge(
            self,
            "AwsSolutions-L1",
            "python3.13 is pinned deliberately: the dependency layer is built from cp313 wheels and "
            "the streaming exec wrapper (/opt/parley-stream) is tested on 3.13. Move both together.",
        )
