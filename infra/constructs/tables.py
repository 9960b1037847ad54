"""ParleyTables: every DynamoDB table, built from parley.storage.schema.TABLES (the one definition
that moto and the local server use too), and least-privilege grants on them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aws_cdk import Acknowledgment, RemovalPolicy, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from parley.storage.schema import TABLES, Key, TableSpec

# Tables whose loss loses nothing: Powertools idempotency records expire on their own.
EPHEMERAL = frozenset({"idempotency"})

# Item reads and writes, as IAM authorizes them (TransactWriteItems and TransactGetItems are
# authorized as their parts). No Scan (DESIGN.md section 4: no Scan on any request path), no
# stream reads (the event emitter gets its own grant), no DescribeTable.
READ_ONLY_ACTIONS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query")
# ConditionCheckItem only ever appears in a TransactWriteItems, so it goes with the writes.
READ_ACTIONS = (*READ_ONLY_ACTIONS, "dynamodb:ConditionCheckItem")
WRITE_ACTIONS = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem")
# What a route resource naming a table grants: "<table>" reads and writes its items; "<table>:read"
# only reads them (GET routes); "<table>:update" reads them and updates existing ones, never puts
# or deletes (GET routes that write back replies a dead invocation left pending).
ACCESS_ACTIONS: dict[str, tuple[str, ...]] = {
    "": READ_ACTIONS + WRITE_ACTIONS,
    ":update": (*READ_ONLY_ACTIONS, "dynamodb:UpdateItem"),
    ":read": READ_ONLY_ACTIONS,
}

_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def _attribute(key: Key | None) -> dynamodb.Attribute | None:
    return None if key is None else dynamodb.Attribute(name=key.name, type=_TYPES[key.type])


def table_access(resource: str, tables: Iterable[str]) -> tuple[str, str] | None:
    """(table, access) for a route resource naming a table ("messages" -> ("messages", ""),
    "messages:read" -> ("messages", ":read"); access is a key of ACCESS_ACTIONS), else None."""
    table, colon, kind = resource.partition(":")
    access = colon + kind
    if table not in set(tables) or access not in ACCESS_ACTIONS:
        return None
    return table, access


def table_resources(tables: Iterable[str]) -> set[str]:
    """Every route resource that names one of `tables`."""
    return {f"{table}{access}" for table in tables for access in ACCESS_ACTIONS}


def pascal_case(logical: str) -> str:
    """A construct id for a logical name: "idempotency" -> "Idempotency", "health_get" -> "HealthGet"."""
    return "".join(part.capitalize() for part in logical.split("_"))


class ParleyTables(Construct):
    """One table per TableSpec: on demand, encrypted with the AWS managed key, streams and TTL where
    the spec says. The stage decides for the data tables: `removal_policy` (RETAIN in production),
    `deletion_protection` and `point_in_time_recovery`; the ephemeral ones are always DESTROY and
    unprotected (their loss loses nothing)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        specs: Iterable[TableSpec] = TABLES,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        deletion_protection: bool = True,
        point_in_time_recovery: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        self.specs: dict[str, TableSpec] = {}
        self.tables: dict[str, dynamodb.Table] = {}
        for spec in specs:
            keep = spec.logical not in EPHEMERAL
            table = dynamodb.Table(
                self,
                pascal_case(spec.logical),
                partition_key=_attribute(spec.partition),
                sort_key=_attribute(spec.sort),
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                encryption=dynamodb.TableEncryption.AWS_MANAGED,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=point_in_time_recovery
                ),
                stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES if spec.stream else None,
                time_to_live_attribute=spec.ttl_attribute,
                deletion_protection=keep and deletion_protection,
                removal_policy=removal_policy if keep else RemovalPolicy.DESTROY,
            )
            for index in spec.indexes:
                table.add_global_secondary_index(
                    index_name=index.name,
                    partition_key=_attribute(index.partition),
                    sort_key=_attribute(index.sort),
                    projection_type=dynamodb.ProjectionType.ALL,
                )
            if not point_in_time_recovery:
                Validations.of(table).acknowledge(
                    Acknowledgment(
                        id="AwsSolutions-DDB3",
                        reason="A development stage: its data is disposable and torn down with the stage "
                        "(infra.stages); production stages keep point-in-time recovery on.",
                    )
                )
            self.specs[spec.logical] = spec
            self.tables[spec.logical] = table

    def table(self, logical: str) -> dynamodb.Table:
        try:
            return self.tables[logical]
        except KeyError:
            known = ", ".join(sorted(self.tables))
            raise KeyError(f"no table {logical!r}; the tables are {known}") from None

    def table_names(self, logicals: Iterable[str]) -> Mapping[str, str]:
        """The environment a function needs for these tables: PARLEY_TABLE_<LOGICAL> = name."""
        return {f"PARLEY_TABLE_{logical.upper()}": self.table(logical).table_name for logical in logicals}

    def grant_data(self, grantee: iam.IGrantable, logical: str, access: str = "") -> iam.Grant:
        """The item actions of `access` (a key of ACCESS_ACTIONS) on the table and its indexes."""
        return self._grant(grantee, logical, ACCESS_ACTIONS[access])

    def grant_read_data(self, grantee: iam.IGrantable, logical: str) -> iam.Grant:
        """GetItem, BatchGetItem and Query only (TransactGetItems is authorized as GetItem)."""
        return self.grant_data(grantee, logical, ":read")

    def _grant(self, grantee: iam.IGrantable, logical: str, actions: tuple[str, ...]) -> iam.Grant:
        # Table.grant_read_write_data would grant "<table>/index/*" (a wildcard cdk-nag flags) and
        # Scan; naming each index of the spec is exact.
        table = self.table(logical)
        arns = [table.table_arn] + [f"{table.table_arn}/index/{i.name}" for i in self.specs[logical].indexes]
        return iam.Grant.add_to_principal(grantee=grantee, actions=list(actions), resource_arns=arns)
