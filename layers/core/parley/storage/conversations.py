"""Conversations, chat sessions and messages in DynamoDB (DESIGN.md section 4).

    conversations  pk = {project}#{conversation}  sk = conversation | session#{id}
    messages       pk = {project}#{conversation}  sk = seq (dense integers from 1)

The conversation item holds `next_seq`, the counters, the status and a version. A send
reserves two sequence numbers (the user message and its reply) in the same transaction that
writes the user message and a `pending` reply placeholder, conditioned on `next_seq` and the
status: concurrent senders retry, nobody gets a gap or a duplicate, and each reply sits right
after its own user message. Every read on the send path is a bounded query.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from parley.aws import clients
from parley.domain.chat import ToolCall, Usage
from parley.domain.conversations import Cost, Message
from parley.domain.errors import Conflict
from parley.settings import get_settings
from parley.storage.base import error_code
from parley.storage.items import from_item, to_item, to_value

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

STATUSES = ("active", "archived", "handed_off")
CONVERSATION_SK = "conversation"
# In the messages partition, seqs 1.. are the visible messages; hidden injected context sits at
# HIDDEN_BASE + n (n = 1, 2, ... in injection order) and the summary at SUMMARY_SEQ, so history
# range queries (seq >= 1) never see them and one bounded query reads them all.
HIDDEN_BASE = -1_000_000_000
SUMMARY_SEQ = 0
MAX_HIDDEN = 50
STALE_PENDING = timedelta(minutes=16)  # longer than any invocation (15 min)


class StaleConversation(Exception):
    """The conversation changed between read and write (another sender won the race)."""


def _pk(project_id: str, conversation_id: str) -> str:
    return f"{project_id}#{conversation_id}"


def list_keys(project_id: str, user_id: str | None, status: str) -> dict[str, str]:
    keys = {"list_project": f"{project_id}#{status}"}
    if user_id is not None:
        keys["list_owner"] = f"{project_id}#{user_id}#{status}"
    return keys


class ConversationStore:
    def __init__(
        self,
        client: DynamoDBClient | None = None,
        conversations_table: str | None = None,
        messages_table: str | None = None,
    ) -> None:
        self._client = client
        self._conversations = conversations_table
        self._messages = messages_table

    @property
    def client(self) -> DynamoDBClient:
        return self._client or clients().dynamodb

    @property
    def conversations(self) -> str:
        return self._conversations or get_settings().table("conversations")

    @property
    def messages(self) -> str:
        return self._messages or get_settings().table("messages")

    # conversations
    def put_new(self, record: dict[str, Any]) -> None:
        item = {"pk": _pk(record["project_id"], record["id"]), "sk": CONVERSATION_SK, **record}
        self.client.put_item(
            TableName=self.conversations, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)"
        )

    def get(self, project_id: str, conversation_id: str) -> dict[str, Any] | None:
        found = self.client.get_item(
            TableName=self.conversations,
            Key={"pk": {"S": _pk(project_id, conversation_id)}, "sk": {"S": CONVERSATION_SK}},
            ConsistentRead=True,
        )
        item = found.get("Item")
        return _strip(from_item(item)) if item else None

    def replace(self, record: dict[str, Any], expected_version: int) -> None:
        """Write the whole record if nobody changed it since `expected_version`."""
        item = {"pk": _pk(record["project_id"], record["id"]), "sk": CONVERSATION_SK, **record}
        try:
            self.client.put_item(
                TableName=self.conversations,
                Item=to_item(item),
                ConditionExpression="#v = :v",
                ExpressionAttributeNames={"#v": "version"},
                ExpressionAttributeValues={":v": to_value(expected_version)},
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise StaleConversation from None
            raise

    def page(
        self, project_id: str, user_id: str | None, statuses: tuple[str, ...], limit: int, before: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest activity first across the given statuses: one bounded query per status."""
        index, key = ("by_owner", "list_owner") if user_id is not None else ("by_project", "list_project")
        found: list[dict[str, Any]] = []
        for status in statuses:
            partition = list_keys(project_id, user_id, status)[key]
            request: dict[str, Any] = {
                "TableName": self.conversations,
                "IndexName": index,
                "KeyConditionExpression": "#k = :k" + (" AND activity < :before" if before else ""),
                "ExpressionAttributeNames": {"#k": key},
                "ExpressionAttributeValues": {":k": {"S": partition}, **({":before": {"S": before}} if before else {})},
                "ScanIndexForward": False,
                "Limit": limit + 1,
            }
            found += [_strip(from_item(i)) for i in self.client.query(**request).get("Items", [])]
        found.sort(key=lambda r: str(r["activity"]), reverse=True)
        page, more = found[:limit], len(found) > limit
        return page, (str(page[-1]["activity"]) if more and page else None)

    def delete_all(self, project_id: str, conversation_id: str) -> bool:
        """Delete the conversation item first (from then on it is gone for every route), then its
        sessions and messages. False when there was no such conversation."""
        pk = _pk(project_id, conversation_id)
        try:
            self.client.delete_item(
                TableName=self.conversations,
                Key={"pk": {"S": pk}, "sk": {"S": CONVERSATION_SK}},
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        self._purge(self.conversations, pk, ("pk", "sk"))
        self._purge(self.messages, pk, ("pk", "sk"))
        return True

    def _purge(self, table: str, pk: str, key_names: tuple[str, str]) -> None:
        request: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ProjectionExpression": "pk, sk",
        }
        while True:
            page = self.client.query(**request)
            keys = [{name: item[name] for name in key_names} for item in page.get("Items", [])]
            for start in range(0, len(keys), 25):
                self._batch_delete(table, keys[start : start + 25])
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _batch_delete(self, table: str, keys: list[dict[str, Any]]) -> None:
        pending: list[Any] = [{"DeleteRequest": {"Key": key}} for key in keys]
        for attempt in range(8):
            if not pending:
                return
            answer = self.client.batch_write_item(RequestItems={table: pending})
            pending = list(answer.get("UnprocessedItems", {}).get(table, []))
            if pending:
                time.sleep(min(1.0, 0.05 * 2**attempt))
        if pending:
            raise RuntimeError(f"{len(pending)} items of {table} could not be deleted")

    # sessions
    def put_session(self, project_id: str, conversation_id: str, session: dict[str, Any]) -> None:
        item = {"pk": _pk(project_id, conversation_id), "sk": f"session#{session['id']}", **session}
        self.client.transact_write_items(
            TransactItems=[
                {
                    "ConditionCheck": {
                        "TableName": self.conversations,
                        "Key": {"pk": {"S": _pk(project_id, conversation_id)}, "sk": {"S": CONVERSATION_SK}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
                {"Put": {"TableName": self.conversations, "Item": to_item(item)}},
            ]
        )

    def sessions(
        self, project_id: str, conversation_id: str, limit: int, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        request: dict[str, Any] = {
            "TableName": self.conversations,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": _pk(project_id, conversation_id)}, ":prefix": {"S": "session#"}},
            "Limit": limit,
        }
        if after:
            request["ExclusiveStartKey"] = {
                "pk": {"S": _pk(project_id, conversation_id)},
                "sk": {"S": f"session#{after}"},
            }
        page = self.client.query(**request)
        last = page.get("LastEvaluatedKey")
        return [_strip(from_item(i)) for i in page.get("Items", [])], (
            str(last["sk"]["S"]).removeprefix("session#") if last else None
        )

    def get_session(self, project_id: str, conversation_id: str, session_id: str) -> dict[str, Any] | None:
        found = self.client.get_item(
            TableName=self.conversations,
            Key={"pk": {"S": _pk(project_id, conversation_id)}, "sk": {"S": f"session#{session_id}"}},
        )
        item = found.get("Item")
        return _strip(from_item(item)) if item else None

    # messages
    def append_pair(
        self, conversation: dict[str, Any], user: dict[str, Any], reply: dict[str, Any], changes: dict[str, Any]
    ) -> None:
        """Write the user message (seq n) and the reply placeholder (n + 1) and move next_seq to
        n + 2, if the conversation is still at next_seq n and active. StaleConversation otherwise."""
        project, conversation_id = conversation["project_id"], conversation["id"]
        pk = _pk(project, conversation_id)
        names = {f"#f{i}": name for i, name in enumerate(changes)}
        values = {f":f{i}": to_value(value) for i, value in enumerate(changes.values())}
        writes: list[TransactWriteItemTypeDef] = [
            {
                "Update": {
                    "TableName": self.conversations,
                    "Key": {"pk": {"S": pk}, "sk": {"S": CONVERSATION_SK}},
                    "UpdateExpression": "SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(changes))),
                    "ConditionExpression": "next_seq = :expected AND #status = :active",
                    "ExpressionAttributeNames": {**names, "#status": "status"},
                    "ExpressionAttributeValues": {
                        **values,
                        ":expected": to_value(conversation["next_seq"]),
                        ":active": {"S": "active"},
                    },
                }
            },
            {
                "Put": {
                    "TableName": self.messages,
                    "Item": to_item({"pk": pk, "sk": user["seq"], **user}),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self.messages,
                    "Item": to_item({"pk": pk, "sk": reply["seq"], **reply}),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        try:
            self.client.transact_write_items(TransactItems=writes)
        except ClientError as error:
            if error_code(error) in ("TransactionCanceledException", "TransactionConflictException"):
                raise StaleConversation from None
            raise

    def finish_message(self, project_id: str, conversation_id: str, seq: int, fields: dict[str, Any]) -> None:
        """Set the fields given (a None value removes the attribute)."""
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        sets = [f"#f{i} = :f{i}" for i, value in enumerate(fields.values()) if value is not None]
        removes = [f"#f{i}" for i, value in enumerate(fields.values()) if value is None]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        self.client.update_item(
            TableName=self.messages,
            Key={"pk": {"S": _pk(project_id, conversation_id)}, "sk": {"N": str(seq)}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":f{i}": to_value(v) for i, v in enumerate(fields.values()) if v is not None},
        )

    def recent(self, project_id: str, conversation_id: str, before_seq: int, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` messages before `before_seq`, oldest first: one bounded query."""
        page = self.client.query(
            TableName=self.messages,
            KeyConditionExpression="pk = :pk AND sk < :before",
            ExpressionAttributeValues={
                ":pk": {"S": _pk(project_id, conversation_id)},
                ":before": {"N": str(before_seq)},
            },
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_strip(from_item(i)) for i in reversed(page.get("Items", []))]

    def newest(
        self, project_id: str, conversation_id: str, before_seq: int, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` visible messages before `before_seq`, newest first, and whether they reach seq 1."""
        if before_seq <= 1:
            return [], True
        page = self.client.query(
            TableName=self.messages,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
            ExpressionAttributeValues={
                ":pk": {"S": _pk(project_id, conversation_id)},
                ":first": {"N": "1"},
                ":last": {"N": str(before_seq - 1)},
            },
            ScanIndexForward=False,
            Limit=limit,
            # only what a context window needs: less to read (and to pay for) on every send
            ProjectionExpression="seq, #r, #s, content, tokens",
            ExpressionAttributeNames={"#r": "role", "#s": "status"},
        )
        items = [_strip(from_item(i)) for i in page.get("Items", [])]
        return items, not items or int(items[-1]["seq"]) == 1

    def pinned(self, project_id: str, conversation_id: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The hidden context items (in injection order) and the summary, in one bounded query."""
        page = self.client.query(
            TableName=self.messages,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
            ExpressionAttributeValues={
                ":pk": {"S": _pk(project_id, conversation_id)},
                ":low": {"N": str(HIDDEN_BASE)},
                ":high": {"N": str(SUMMARY_SEQ)},
            },
            Limit=MAX_HIDDEN + 1,
        )
        items = [_strip(from_item(i)) for i in page.get("Items", [])]
        summary = next((i for i in items if int(i["seq"]) == SUMMARY_SEQ), None)
        return [i for i in items if int(i["seq"]) < SUMMARY_SEQ], summary

    def put_summary(
        self, project_id: str, conversation_id: str, summary: dict[str, Any], previous_version: int | None
    ) -> bool:
        """Store a new summary version unless another writer stored one first (then False)."""
        item = {"pk": _pk(project_id, conversation_id), "sk": SUMMARY_SEQ, "seq": SUMMARY_SEQ, **summary}
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if previous_version is None
            else {
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":v": to_value(previous_version)},
            }
        )
        try:
            self.client.put_item(TableName=self.messages, Item=to_item(item), **condition)
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def add_hidden(self, conversation: dict[str, Any], item: dict[str, Any]) -> None:
        """Store a hidden context item as number conversation.next_hidden (StaleConversation if it moved)."""
        project, conversation_id = conversation["project_id"], conversation["id"]
        number = int(conversation.get("next_hidden", 1))
        pk = _pk(project, conversation_id)
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.conversations,
                            "Key": {"pk": {"S": pk}, "sk": {"S": CONVERSATION_SK}},
                            "UpdateExpression": "SET next_hidden = :next",
                            "ConditionExpression": "attribute_exists(pk) AND (attribute_not_exists(next_hidden) OR "
                            "next_hidden = :expected)",
                            "ExpressionAttributeValues": {":next": to_value(number + 1), ":expected": to_value(number)},
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.messages,
                            "Item": to_item(
                                {"pk": pk, "sk": HIDDEN_BASE + number, "seq": HIDDEN_BASE + number, **item}
                            ),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as error:
            if error_code(error) in ("TransactionCanceledException", "TransactionConflictException"):
                raise StaleConversation from None
            raise

    def message_range(
        self, project_id: str, conversation_id: str, low: int, high: int, descending: bool
    ) -> list[dict[str, Any]]:
        """Messages with low <= seq <= high (at most high - low + 1 of them)."""
        if high < low:
            return []
        page = self.client.query(
            TableName=self.messages,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
            ExpressionAttributeValues={
                ":pk": {"S": _pk(project_id, conversation_id)},
                ":low": {"N": str(low)},
                ":high": {"N": str(high)},
            },
            ScanIndexForward=not descending,
            Limit=high - low + 1,
        )
        return [_strip(from_item(i)) for i in page.get("Items", [])]


def retry_stale(attempt: Callable[[], Any], *, tries: int = 30, sleep: Callable[[float], None] = time.sleep) -> Any:
    """Run `attempt` again (re-reading inside it) while another writer wins the race."""
    for n in range(tries):
        try:
            return attempt()
        except StaleConversation:
            sleep(random.uniform(0, min(0.2, 0.005 * 2**n)))  # noqa: S311 - jitter, not security
    raise Conflict("The conversation is too busy right now; retry the request.", code="conversation_busy")


def message_from_item(item: dict[str, Any], now: datetime | None = None) -> Message:
    """A stored message as the API shows it. A reply still `pending` after the longest an
    invocation can run (its function died mid-way, e.g. timed out) is shown as `incomplete`."""
    cost = item.get("cost_usd")
    if item.get("status") == "pending" and _older_than(item["created_at"], STALE_PENDING, now):
        item = {
            **item,
            "status": "incomplete",
            "error": {"type": "api_error", "code": "interrupted", "message": "The reply was interrupted."},
        }
    return Message(
        id=item["id"],
        conversation_id=item["conversation_id"],
        seq=int(item["seq"]),
        role=item["role"],
        content=item.get("content") or "",
        status=item.get("status", "completed"),
        tool_calls=[ToolCall(**t) for t in item["tool_calls"]] if item.get("tool_calls") else None,
        attachments=item.get("attachments"),
        model=item.get("model"),
        provider_id=item.get("provider_id"),
        session_id=item.get("session_id"),
        usage=Usage(**item["usage"]) if item.get("usage") else None,
        cost=Cost(amount_usd=float(Decimal(str(cost)))) if cost is not None else None,
        error=item.get("error"),
        created_at=item["created_at"],
    )


def _older_than(timestamp: str, age: timedelta, now: datetime | None) -> bool:
    created = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (now or datetime.now(UTC)) - created > age


def _strip(data: dict[str, Any]) -> dict[str, Any]:
    for key in ("pk", "sk", "list_project", "list_owner"):
        data.pop(key, None)
    return data
