"""Handoff items in the conversations table (parley.domain.handoffs has the key schema).

    pk = {project}#{conversation}   sk = handoff#{hof_id}
    sparse index `handoffs`:        handoff_queue = {project}#{status}   handoff_at = {time}#{hof_id}

Every change of a handoff is one TransactWriteItems with the conversation item's move (its
status, its `handoff` field or its agent, and its version, conditioned on the version and the
status read), so the two never disagree, and the version orders the handoff's events like every
other change of the conversation. The cancellation reasons tell what a failure means: a
condition (the conversation moved, or the handoff did) or a conflicting transaction is
StaleConversation (the service reads again and decides: a 409, or another try), throttling is a
503, an item over DynamoDB's limit a 413.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from parley.domain.conversations import ConversationRecord
from parley.domain.handoffs import HANDOFF_SK_PREFIX, HandoffRecord, handoff_sk, queue_keys, queue_partition
from parley.storage.base import (
    REASON_CONDITION,
    REASON_CONFLICT,
    REASON_THROTTLED,
    REASON_VALIDATION,
    THROTTLE_CODES,
    TableRepository,
    cancellation_reasons,
    error_code,
    too_large,
    transact_exactly_once,
    unavailable,
)
from parley.storage.conversations import CONVERSATION_SK, StaleConversation
from parley.storage.items import from_item, to_item, to_value

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

QUEUE_INDEX = "handoffs"
_KEYS = ("pk", "sk", "handoff_queue", "handoff_at")


def _pk(project_id: str, conversation_id: str) -> str:
    return f"{project_id}#{conversation_id}"


def _record(item: dict[str, Any]) -> HandoffRecord:
    data = from_item(item)
    for key in _KEYS:
        data.pop(key, None)
    return HandoffRecord(**data)


def _item(record: HandoffRecord) -> dict[str, Any]:
    at = record.resolved_at if record.status == "resolved" and record.resolved_at else record.requested_at
    return to_item(
        {
            "pk": _pk(record.project_id, record.conversation_id),
            "sk": handoff_sk(record.id),
            **record.stored(),
            **queue_keys(record.project_id, record.status, at, record.id),
        }
    )


class HandoffStore(TableRepository):
    logical_table = "conversations"

    def get(self, project_id: str, conversation_id: str, handoff_id: str) -> HandoffRecord | None:
        found = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": _pk(project_id, conversation_id)}, "sk": {"S": handoff_sk(handoff_id)}},
            ConsistentRead=True,
        )
        item = found.get("Item")
        return _record(item) if item else None

    def write(
        self,
        conversation: ConversationRecord,
        handoff: HandoffRecord,
        *,
        changes: dict[str, Any],
        removes: tuple[str, ...] = (),
        status: str,
        pending_id: str | None = None,
        token: str | None = None,
    ) -> None:
        """Apply `changes` (SET) and `removes` (REMOVE) to the conversation item if it is still at
        its version, in `status` and (with `pending_id`) holding that pending handoff; and put
        `handoff`: as a new item, or (with `pending_id`) over the pending one it resolves. One
        TransactWriteItems; `token` its ClientRequestToken."""
        pk = _pk(conversation.project_id, conversation.id)
        names = {f"#f{i}": name for i, name in enumerate(changes)}
        values = {f":f{i}": to_value(value) for i, value in enumerate(changes.values())}
        removed = {f"#r{i}": name for i, name in enumerate(removes)}
        expression = "SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(changes)))
        if removes:
            expression += " REMOVE " + ", ".join(removed)
        condition = "attribute_exists(pk) AND #version = :version AND #status = :status"
        condition_names = {"#version": "version", "#status": "status"}
        condition_values = {":version": to_value(conversation.version), ":status": {"S": status}}
        if pending_id is not None:
            condition += " AND #handoff.#id = :pending"
            condition_names |= {"#handoff": "handoff", "#id": "id"}
            condition_values[":pending"] = {"S": pending_id}
        put: dict[str, Any] = {"TableName": self.table, "Item": _item(handoff)}
        if pending_id is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#s = :pending_status"
            put["ExpressionAttributeNames"] = {"#s": "status"}
            put["ExpressionAttributeValues"] = {":pending_status": {"S": "pending"}}
        writes: list[TransactWriteItemTypeDef] = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": {"pk": {"S": pk}, "sk": {"S": CONVERSATION_SK}},
                    "UpdateExpression": expression,
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": {**names, **removed, **condition_names},
                    "ExpressionAttributeValues": {**values, **condition_values},
                }
            },
            {"Put": put},  # type: ignore[typeddict-item]
        ]
        request: dict[str, Any] = {"TransactItems": writes}
        if token is not None:
            request["ClientRequestToken"] = token
        self._transact(request)

    def _transact(self, request: dict[str, Any]) -> None:
        """TransactWriteItems exactly once (`transact_exactly_once`), its failure classified."""
        try:
            transact_exactly_once(self.client, request)
        except ClientError as error:
            classified = _classified(error)
            if classified is error:
                raise
            raise classified from error

    def history(
        self, project_id: str, conversation_id: str, limit: int, after: str | None
    ) -> tuple[list[HandoffRecord], str | None]:
        """A conversation's handoffs, oldest first (ids are ULIDs): one bounded query."""
        pk = _pk(project_id, conversation_id)
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": HANDOFF_SK_PREFIX}},
            "ConsistentRead": True,
            "Limit": limit + 1,
        }
        if after is not None:
            request["ExclusiveStartKey"] = {"pk": {"S": pk}, "sk": {"S": handoff_sk(after)}}
        items = [_record(i) for i in self.client.query(**request).get("Items", [])]
        page = items[:limit]
        return page, (page[-1].id if len(items) > limit and page else None)

    def queue(
        self, project_id: str, status: str, limit: int, after: str | None
    ) -> tuple[list[HandoffRecord], str | None]:
        """The project's handoffs in `status`, oldest first (by request time while pending, by
        resolution time once resolved): one bounded query of the sparse index."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": QUEUE_INDEX,
            "KeyConditionExpression": "handoff_queue = :q" + (" AND handoff_at > :after" if after else ""),
            "ExpressionAttributeValues": {
                ":q": {"S": queue_partition(project_id, status)},
                **({":after": {"S": after}} if after else {}),
            },
            "Limit": limit + 1,
        }
        found = self.client.query(**request).get("Items", [])
        page = found[:limit]
        last = str(page[-1]["handoff_at"]["S"]) if len(found) > limit and page else None
        return [_record(i) for i in page], last


def _classified(error: ClientError) -> Exception:
    """What a failed handoff transaction means (DESIGN.md section 4: never lumped together)."""
    code, reasons = error_code(error), cancellation_reasons(error)
    if code == "TransactionConflictException":
        return StaleConversation()
    if code in THROTTLE_CODES or any(r in REASON_THROTTLED for r in reasons):
        return unavailable("the handoff write")
    if (code == "ValidationException" and "size" in str(error).lower()) or REASON_VALIDATION in reasons:
        return too_large("The handoff")
    if code == "TransactionCanceledException" and (REASON_CONDITION in reasons or REASON_CONFLICT in reasons):
        return StaleConversation()  # the conversation (or the handoff) moved, or another transaction held it
    return error
