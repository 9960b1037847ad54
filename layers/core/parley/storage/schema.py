"""The DynamoDB tables, defined once.

CDK builds the tables from these specs (infra/), and the local server and the tests create
them in moto with `create_tables`, so the three can never disagree. Keys start with the
project, so no query can cross tenants (DESIGN.md section 4).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

AttrType = Literal["S", "N", "B"]


@dataclass(frozen=True)
class Key:
    name: str
    type: AttrType = "S"


@dataclass(frozen=True)
class Index:
    name: str
    partition: Key
    sort: Key | None = None


@dataclass(frozen=True)
class TableSpec:
    logical: str
    partition: Key
    sort: Key | None = None
    indexes: tuple[Index, ...] = ()
    stream: bool = False
    ttl_attribute: str | None = None

    def attributes(self) -> dict[str, AttrType]:
        keys = [self.partition, self.sort]
        for index in self.indexes:
            keys += [index.partition, index.sort]
        return {k.name: k.type for k in keys if k is not None}


TABLES: tuple[TableSpec, ...] = (
    # API keys, by SHA-256 of the secret; listed per project through the index.
    TableSpec(
        "keys",
        Key("pk"),
        indexes=(Index("by_project", Key("project_id"), Key("key_id")),),
    ),
    # Conversations and their sub-items (sessions, handoffs): pk = {project}#{conversation},
    # sk = conversation | session#{id} | handoff#{id}.
    # Lists come from two indexes whose keys carry the status, so every status filter is an exact
    # query: by_project ({project}#{status}) and by_owner ({project}#{user}#{status}), newest activity
    # first; by_parent lists threads. The sparse `handoffs` index holds only handoff items: the
    # project's queue by status ({project}#{status}), oldest first ({time}#{id}).
    TableSpec(
        "conversations",
        Key("pk"),
        Key("sk"),
        indexes=(
            Index("by_project", Key("list_project"), Key("activity")),
            Index("by_owner", Key("list_owner"), Key("activity")),
            Index("by_parent", Key("parent"), Key("created_at")),
            Index("handoffs", Key("handoff_queue"), Key("handoff_at")),
        ),
        stream=True,
        # a send's Idempotency-Key record (sk = send#...) expires after 24 h
        ttl_attribute="expiration",
    ),
    # Messages: pk = {project}#{conversation}, sk = dense sequence number. The sparse `pending`
    # index holds only replies still being written (pending_shard is removed when they finish),
    # so the sweep finds replies a dead invocation left pending without a Scan.
    TableSpec(
        "messages",
        Key("pk"),
        Key("sk", "N"),
        indexes=(Index("pending", Key("pending_shard"), Key("created_at")),),
        stream=True,
    ),
    # Chat configs, providers, agents, documents, indexes, webhooks: pk = {project}#{kind}, sk = id.
    TableSpec("chats", Key("pk"), Key("sk")),
    # Metering counters and audit events (audit events expire).
    TableSpec("usage", Key("pk"), Key("sk"), ttl_attribute="expires_at"),
    # Powertools idempotency records.
    TableSpec("idempotency", Key("id"), ttl_attribute="expiration"),
)


def spec(logical: str) -> TableSpec:
    for table in TABLES:
        if table.logical == logical:
            return table
    raise KeyError(logical)


def _key_schema(partition: Key, sort: Key | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": partition.name, "KeyType": "HASH"}]
    if sort is not None:
        schema.append({"AttributeName": sort.name, "KeyType": "RANGE"})
    return schema


def _definitions(table: TableSpec) -> list[dict[str, str]]:
    return [{"AttributeName": n, "AttributeType": t} for n, t in sorted(table.attributes().items())]


def _index(index: Index) -> dict[str, Any]:
    return {
        "IndexName": index.name,
        "KeySchema": _key_schema(index.partition, index.sort),
        "Projection": {"ProjectionType": "ALL"},
    }


def create_table_request(table: TableSpec, name: str) -> dict[str, Any]:
    """The CreateTable request for a spec (on-demand billing), as moto and DynamoDB Local take it."""

    request: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": _definitions(table),
        "KeySchema": _key_schema(table.partition, table.sort),
    }
    if table.indexes:
        request["GlobalSecondaryIndexes"] = [_index(index) for index in table.indexes]
    if table.stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    return request


def create_tables(
    client: DynamoDBClient, names: dict[str, str] | None = None, tables: Iterable[TableSpec] = TABLES
) -> None:
    """Create every table (in moto or DynamoDB Local), with TTL where the spec has it."""
    for table in tables:
        name = (names or {}).get(table.logical, f"parley-{table.logical}")
        client.create_table(**create_table_request(table, name))
        if table.ttl_attribute:
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
            )


def create_missing_indexes(
    client: DynamoDBClient, names: dict[str, str] | None = None, tables: Iterable[TableSpec] = TABLES
) -> list[str]:
    """Add the indexes a spec has and an existing table lacks (a local state saved before an index
    was added: DynamoDB, like moto, builds a new index from the items already there); the names of
    the indexes created. CDK does this for deployed tables."""
    created = []
    for table in (t for t in tables if t.indexes):
        name = (names or {}).get(table.logical, f"parley-{table.logical}")
        existing = client.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes", [])
        have = {index["IndexName"] for index in existing}
        for index in table.indexes:
            if index.name in have:
                continue
            client.update_table(
                TableName=name,
                AttributeDefinitions=_definitions(table),  # type: ignore[arg-type]
                GlobalSecondaryIndexUpdates=[{"Create": _index(index)}],  # type: ignore[typeddict-item]
            )
            created.append(f"{name}/{index.name}")
    return created
