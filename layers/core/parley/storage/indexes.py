"""Knowledge indexes and their documents, in the `chats` table.

- an index: pk = {project}#index, sk = idx_... (ResourceRepository), with its counters;
- a document of an index: pk = {project}#{index}#index_document, sk = the document's id.

A document's every change of status and the index's counters change in one transaction, so the
counts never drift from the documents; the index must exist and not be deleting, so a late
write of the ingestion worker cannot add to an index being deleted (nor bring a document back).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from parley.domain.errors import NotFound
from parley.domain.indexes import IndexDocumentRecord, IndexRecord
from parley.storage.base import REASON_CONDITION, cancellation_reasons, transact_exactly_once, write_with_retry
from parley.storage.items import to_value
from parley.storage.resources import ResourceRepository, ScopedRepository

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

COUNTERS = ("documents", "processing", "ready", "failed", "chunks")


class IndexRepository(ResourceRepository[IndexRecord]):
    def __init__(self, client: DynamoDBClient | None = None, table: str | None = None) -> None:
        super().__init__("index", IndexRecord, client, table)

    def mark_deleting(self, record: IndexRecord, at: str) -> None:
        """The first step of a delete: no document is added or finished from now on."""
        self.replace(record.model_copy(update={"deleting_at": at, "version": record.version + 1}), record.version)


class StaleDocument(Exception):
    """The document changed (re-added, deleted) or its index is gone or deleting: the write did
    not happen."""


class IndexDocumentRepository(ScopedRepository[IndexDocumentRecord]):
    """Documents of one index (scope = `{project}#{index}`), by id, in id order."""

    newest_first = False

    def __init__(self, client: DynamoDBClient | None = None, table: str | None = None) -> None:
        super().__init__("index_document", IndexDocumentRecord, client, table)
        self.indexes = IndexRepository(client, table)

    @staticmethod
    def scope(project_id: str, index_id: str) -> str:
        return f"{project_id}#{index_id}"

    def partition(self, scope: str) -> str:
        return f"{scope}#index_document"

    def scope_of(self, record: IndexDocumentRecord) -> str:
        return self.scope(record.project_id, record.index_id)

    def find(self, project_id: str, index_id: str, document_id: str) -> IndexDocumentRecord | None:
        return self.get(self.scope(project_id, index_id), document_id)

    # writes: the document and its index's counters, in one transaction

    def put(self, record: IndexDocumentRecord, previous: IndexDocumentRecord | None) -> None:
        """Add the document, or replace `previous` (as read: its version is the condition)."""
        deltas = _counted(record)
        if previous is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
            deltas["documents"] = 1
        else:
            condition = _version_condition(previous.version)
            for name, value in _counted(previous).items():
                deltas[name] = deltas.get(name, 0) - value
        self._write(
            {"Put": {"TableName": self.table, "Item": self._item(record), **condition}},
            record,
            deltas,
        )

    def finish(self, record: IndexDocumentRecord, expected_version: int) -> None:
        """Store the document's new status (ready or failed) if it is still the version read."""
        before = self.find(record.project_id, record.index_id, record.id)
        if before is None or before.version != expected_version:
            raise StaleDocument
        deltas = _counted(record)
        for name, value in _counted(before).items():
            deltas[name] = deltas.get(name, 0) - value
        self._write(
            {"Put": {"TableName": self.table, "Item": self._item(record), **_version_condition(expected_version)}},
            record,
            deltas,
        )

    def remove(self, record: IndexDocumentRecord) -> None:
        deltas = {name: -value for name, value in _counted(record).items()}
        deltas["documents"] = -1
        self._write(
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": self._key(self.scope_of(record), record.id),
                    **_version_condition(record.version),
                }
            },
            record,
            deltas,
            require_live=False,  # documents of an index being deleted are removed too
        )

    def purge(self, project_id: str, index_id: str, document_ids: list[str]) -> None:
        """Delete documents without counting (the index itself is being deleted)."""
        scope = self.scope(project_id, index_id)
        for start in range(0, len(document_ids), 25):
            requests: list[Any] = [
                {"DeleteRequest": {"Key": self._key(scope, d)}} for d in document_ids[start : start + 25]
            ]
            while requests:
                answer = write_with_retry(
                    lambda batch=requests: self.client.batch_write_item(RequestItems={self.table: batch}),  # type: ignore[misc]
                    what="the index's documents",
                )
                requests = list(answer.get("UnprocessedItems", {}).get(self.table, []))

    def _write(
        self,
        first: dict[str, Any],
        record: IndexDocumentRecord,
        deltas: dict[str, int],
        *,
        require_live: bool = True,
    ) -> None:
        changes = {name: value for name, value in deltas.items() if value}
        condition = "attribute_exists(pk)" + (" AND attribute_not_exists(deleting_at)" if require_live else "")
        check: dict[str, Any] = {
            "TableName": self.table,
            "Key": self.indexes._key(record.project_id, record.index_id),
            "ConditionExpression": condition,
        }
        if changes:
            names = {f"#c{i}": name for i, name in enumerate(changes)}
            values = {f":c{i}": to_value(value) for i, value in enumerate(changes.values())}
            update = {
                **check,
                "UpdateExpression": "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(changes))),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
            items: list[Any] = [first, {"Update": update}]
        else:
            items = [first, {"ConditionCheck": check}]

        def attempt() -> None:
            # a token per try: a resend of the same try (its answer lost) is answered from the commit
            transact_exactly_once(self.client, {"TransactItems": items, "ClientRequestToken": uuid.uuid4().hex})

        try:
            write_with_retry(attempt, what="the index document")
        except ClientError as error:
            reasons = cancellation_reasons(error)
            if len(reasons) > 1 and reasons[1] == REASON_CONDITION:
                raise NotFound(f"No index {record.index_id!r}.", code="index_not_found") from None
            if reasons and reasons[0] == REASON_CONDITION:
                raise StaleDocument from None
            raise


def _counted(record: IndexDocumentRecord) -> dict[str, int]:
    """What a document adds to its index's counters: one to its status, its chunks when ready."""
    counts: dict[str, int] = {record.status: 1}
    if record.status == "ready":
        counts["chunks"] = record.chunks
    return counts


def _version_condition(version: int) -> dict[str, Any]:
    return {
        "ConditionExpression": "#v = :v",
        "ExpressionAttributeNames": {"#v": "version"},
        "ExpressionAttributeValues": {":v": to_value(version)},
    }
