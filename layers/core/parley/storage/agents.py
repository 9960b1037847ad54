"""Agents, in the `chats` table.

    pk = {project}#agents                       sk = {agent_id}            the head: the latest version
    pk = {project}#{agent_id}#agent_versions    sk = v{version:010d}       every version as written (immutable)
    pk = {project}#agent_names                  sk = {name}                the name's claim: {agent_id}
    pk = {project}#agent_requests               sk = {marker}              an Idempotency-Key's agent

What belongs together is written in one TransactWriteItems: a create puts the head, version 1,
the name's claim (and the Idempotency-Key's marker); an update puts the head at version n + 1
(conditioned on version n, and on the secret rotation it read) and version n + 1's item, and a
rename claims the new name and releases the old one; a delete removes the head and the claim.
The versions of a deleted agent are removed after, in batches (unreachable by then: every read
of a version checks the head first).

A cancelled transaction is told by its CancellationReasons (one per item, in the order
written): the head's condition (someone else updated or deleted it: StaleAgent, re-read), the
claim's (NameTaken), the marker's (the Idempotency-Key was used: Conflict). A conflict with
another transaction is retried and throttling is a 503 (write_with_retry), an item over 400 KB
a 413.

The signing secret lives in Secrets Manager, one secret per agent (`AgentSecret`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from parley.domain.agents import AgentRecord
from parley.domain.errors import Conflict
from parley.settings import get_settings
from parley.storage.base import REASON_CONDITION, cancellation_reasons, write_with_retry
from parley.storage.items import to_value
from parley.storage.resources import ResourceRepository, ScopedRepository

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef


class StaleAgent(Exception):
    """The agent's head is not what was read (updated, rotated or deleted since): read it again."""


class NameTaken(Exception):
    """Another agent of the project holds the name."""


def _failed(reasons: list[str], index: int) -> bool:
    """Whether the transaction's item at `index` failed its condition."""
    return len(reasons) > index and reasons[index] == REASON_CONDITION


def version_key(version: int) -> str:
    """A version's sort key: zero-padded, so a query's order is the versions' order."""
    return f"v{version:010d}"


class AgentVersionRepository(ScopedRepository[AgentRecord]):
    """An agent's stored versions; the scope is `{project}#{agent}`, a page newest first."""

    def __init__(self, client: DynamoDBClient | None = None, table: str | None = None) -> None:
        super().__init__("agent version", AgentRecord, client, table)

    @staticmethod
    def scope(project_id: str, agent_id: str) -> str:
        return f"{project_id}#{agent_id}"

    def partition(self, scope: str) -> str:
        return f"{scope}#agent_versions"

    def scope_of(self, record: AgentRecord) -> str:
        return self.scope(record.project_id, record.id)

    def _item(self, record: AgentRecord) -> dict[str, Any]:
        return {**super()._item(record), **self._key(self.scope_of(record), version_key(record.version))}

    def version(self, project_id: str, agent_id: str, version: int) -> AgentRecord | None:
        return self.get(self.scope(project_id, agent_id), version_key(version))

    def purge(self, project_id: str, agent_id: str) -> int:
        """Delete every stored version (a query per 100 keys, batches of 25); how many there were."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": self.partition(self.scope(project_id, agent_id))}},
            "ProjectionExpression": "pk, sk",
            "Limit": 100,
        }
        removed = 0
        while True:
            page = self.client.query(**request)
            keys = [{"pk": item["pk"], "sk": item["sk"]} for item in page.get("Items", [])]
            for start in range(0, len(keys), 25):
                self._batch_delete(keys[start : start + 25])
            removed += len(keys)
            if "LastEvaluatedKey" not in page:
                return removed
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _batch_delete(self, keys: list[dict[str, Any]], sleep: Callable[[float], None] = time.sleep) -> None:
        pending: list[Any] = [{"DeleteRequest": {"Key": key}} for key in keys]
        for attempt in range(8):
            answer = write_with_retry(
                partial(self.client.batch_write_item, RequestItems={self.table: pending}), what="the agent's versions"
            )
            pending = list(answer.get("UnprocessedItems", {}).get(self.table, []))
            if not pending:
                return
            sleep(min(1.0, 0.05 * 2**attempt))
        raise RuntimeError(f"{len(pending)} versions of an agent could not be deleted")


class AgentRepository(ResourceRepository[AgentRecord]):
    """The heads (a page of them is the project's agents, newest first), the name claims, the
    Idempotency-Key markers, and the transactions that keep them and the versions together."""

    def __init__(self, client: DynamoDBClient | None = None, table: str | None = None) -> None:
        super().__init__("agents", AgentRecord, client, table)
        self.versions = AgentVersionRepository(client, table)

    def _claim_key(self, project_id: str, name: str) -> dict[str, Any]:
        return {"pk": {"S": f"{project_id}#agent_names"}, "sk": {"S": name}}

    def _marker_key(self, project_id: str, marker: str) -> dict[str, Any]:
        return {"pk": {"S": f"{project_id}#agent_requests"}, "sk": {"S": marker}}

    # --- reads -------------------------------------------------------------------------------

    def claim_of(self, project_id: str, name: str) -> str | None:
        """The id of the agent holding the name, if one does."""
        found = self.client.get_item(
            TableName=self.table, Key=self._claim_key(project_id, name), ConsistentRead=True
        ).get("Item")
        return str(found["agent_id"]["S"]) if found else None

    def by_idempotency(self, project_id: str, marker: str) -> tuple[str, str] | None:
        """(agent id, request fingerprint) of the agent an Idempotency-Key made, if any."""
        found = self.client.get_item(
            TableName=self.table, Key=self._marker_key(project_id, marker), ConsistentRead=True
        ).get("Item")
        return (found["agent_id"]["S"], found["fingerprint"]["S"]) if found else None

    # --- writes ------------------------------------------------------------------------------

    def _claim(self, record: AgentRecord) -> TransactWriteItemTypeDef:
        return {
            "Put": {
                "TableName": self.table,
                "Item": {**self._claim_key(record.project_id, record.name), "agent_id": {"S": record.id}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _release(self, record: AgentRecord) -> TransactWriteItemTypeDef:
        """The record's name claim deleted, if it is the record's (or there is none)."""
        return {
            "Delete": {
                "TableName": self.table,
                "Key": self._claim_key(record.project_id, record.name),
                "ConditionExpression": "attribute_not_exists(pk) OR agent_id = :id",
                "ExpressionAttributeValues": {":id": {"S": record.id}},
            }
        }

    def _new_version(self, record: AgentRecord) -> TransactWriteItemTypeDef:
        return {
            "Put": {
                "TableName": self.table,
                "Item": self.versions._item(record),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _transact(self, items: list[TransactWriteItemTypeDef], what: str) -> list[str] | None:
        """Write the items in one transaction: None when it committed, its CancellationReasons when
        a condition failed. Each try has its own ClientRequestToken: DynamoDB answers the SDK's
        own resend of a try (after a lost response) from the committed transaction."""

        def attempt() -> object:
            return self.client.transact_write_items(TransactItems=items, ClientRequestToken=uuid.uuid4().hex)

        try:
            write_with_retry(attempt, what=what)
        except ClientError as error:
            reasons = cancellation_reasons(error)
            if REASON_CONDITION in reasons:
                return reasons
            raise
        return None

    def create(self, record: AgentRecord, marker: tuple[str, str] | None = None) -> None:
        """A new agent: its head, version 1 and its name's claim; with `marker` (an
        Idempotency-Key's hash, the request's fingerprint) also the marker a retry finds it by.
        NameTaken when the name is claimed; Conflict when the marker exists."""
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": self._item(record),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            self._new_version(record),
            self._claim(record),
        ]
        if marker is not None:
            items.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {
                            **self._marker_key(record.project_id, marker[0]),
                            "agent_id": {"S": record.id},
                            "fingerprint": {"S": marker[1]},
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        reasons = self._transact(items, "the agent")
        if reasons is None:
            return
        if _failed(reasons, 0) and self._landed(record):
            return  # a resend of this very transaction found it committed: only the answer was lost
        if _failed(reasons, 3):
            raise Conflict("This Idempotency-Key created an agent already.", code="already_exists")
        if _failed(reasons, 2):
            raise NameTaken
        raise Conflict(f"An agent with id {record.id!r} exists already.", code="already_exists")

    def _landed(self, record: AgentRecord) -> bool:
        """Whether this agent's head is stored as this create wrote it (its id is a fresh ULID:
        nothing else writes it)."""
        stored = self.get(record.project_id, record.id)
        return stored is not None and stored.version == 1 and stored.created_at == record.created_at

    def update(self, record: AgentRecord, previous: AgentRecord) -> None:
        """The head moved from `previous` (version n, as read) to `record` (version n + 1), and
        version n + 1 stored beside it; a rename claims the new name and releases the old.
        StaleAgent when the head is not `previous` any more; NameTaken when the new name is held."""
        assert record.version == previous.version + 1
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": self._item(record),
                    "ConditionExpression": "#v = :v AND secret_rotated_at = :rotated",
                    "ExpressionAttributeNames": {"#v": "version"},
                    "ExpressionAttributeValues": {
                        ":v": to_value(previous.version),
                        ":rotated": {"S": previous.secret_rotated_at},
                    },
                }
            },
            self._new_version(record),
        ]
        renamed = record.name != previous.name
        if renamed:
            items += [self._claim(record), self._release(previous)]
        reasons = self._transact(items, "the agent")
        if reasons is None:
            return
        if _failed(reasons, 0) or _failed(reasons, 1):
            raise StaleAgent
        if renamed and _failed(reasons, 2):
            raise NameTaken
        raise StaleAgent  # the old claim is not this agent's: read again

    def remove(self, record: AgentRecord) -> None:
        """The head (at the version read) and its name's claim. StaleAgent when the head moved
        or is gone."""
        items: list[TransactWriteItemTypeDef] = [
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": self._key(record.project_id, record.id),
                    "ConditionExpression": "#v = :v",
                    "ExpressionAttributeNames": {"#v": "version"},
                    "ExpressionAttributeValues": {":v": to_value(record.version)},
                }
            },
            self._release(record),
        ]
        if self._transact(items, "the agent") is not None:
            raise StaleAgent

    def mark_rotated(self, project_id: str, agent_id: str, at: str) -> bool:
        """The head shows a new signing secret set at `at` (its version, the definition's, stays);
        False when the agent is gone."""
        key = self._key(project_id, agent_id)
        return self._conditional(
            lambda: self.client.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="SET secret_rotated_at = :at",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":at": {"S": at}},
            )
        )


# --- the signing secrets -------------------------------------------------------------------------

_FORMAT = "parley.agent-secret/1"


@dataclass(frozen=True)
class AgentSecret:
    """What an agent's secret holds: the secret, and when it was set (the head's
    secret_rotated_at names the same moment, so a cached copy that is older shows). Its repr shows
    no value."""

    current: str = field(repr=False)
    set_at: str

    def encode(self) -> str:
        return json.dumps({"format": _FORMAT, "current": self.current, "set_at": self.set_at})

    @classmethod
    def decode(cls, value: str) -> AgentSecret:
        document = json.loads(value)
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            raise ValueError("not an agent secret")
        return cls(current=str(document["current"]), set_at=str(document["set_at"]))


def secret_name(project_id: str, agent_id: str) -> str:
    return f"parley/{get_settings().stage}/{project_id}/agents/{agent_id}"
