"""Conversations, chat sessions and messages in DynamoDB (DESIGN.md section 4).

    conversations  pk = {project}#{conversation}  sk = conversation | session#{id} | send#{key hash}
                                                  | msg#{message id} (its seq and role)
                                                  | thread#{thread id} (a thread of this conversation)
    messages       pk = {project}#{conversation}  sk = seq (dense integers from 1)

A thread is a conversation of its own (id `thr_`, its own partitions) with `parent_id`; its
parent's partition holds a `thread#{id}` item per thread, written in the thread's creating
transaction, so a delete finds every thread with a consistent query (no index lag) and a thread
list is one query and one BatchGetItem.

The conversation item holds `next_seq`, the counters, the status and a version. A send
reserves two sequence numbers (the user message and its reply) in the same transaction that
writes the user message and a `pending` reply placeholder, conditioned on `next_seq` and the
status: concurrent senders retry, nobody gets a gap or a duplicate, and each reply sits right
after its own user message. Every read on the send path is a bounded query.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import PrivateAttr

from parley.aws import clients
from parley.domain.chat import ToolCall, Usage
from parley.domain.clock import iso
from parley.domain.conversations import (
    Author,
    ConversationRecord,
    Cost,
    HiddenRecord,
    Message,
    MessageRecord,
    SendKeyRecord,
    SessionRecord,
    SummaryRecord,
    WindowLine,
)
from parley.domain.errors import Conflict, NotFound
from parley.settings import get_settings
from parley.storage.base import (
    REASON_CONDITION,
    REASON_CONFLICT,
    REASON_THROTTLED,
    REASON_VALIDATION,
    backoff,
    cancellation_reasons,
    error_code,
    too_large,
    transact_exactly_once,
    unavailable,
    write_with_retry,
)
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
# A pending reply carries `pending_shard` (one of PENDING_SHARDS partitions of the sparse `pending`
# index) until it is finished, so a sweep finds replies left pending by a dead invocation without
# a Scan; finishing removes the attribute, so the index holds only what is in flight.
PENDING_SHARDS = 16
SEND_KEY_TTL = timedelta(hours=24)
INTERRUPTED = {"type": "api_error", "code": "interrupted", "message": "The reply was interrupted."}


class StaleConversation(Exception):
    """The conversation changed between read and write (another sender won the race), or the
    write met another transaction on the same items: re-read and try again."""


class DuplicateSend(Exception):
    """Another request with the same Idempotency-Key stored its pair first."""


def pending_shard(conversation_id: str) -> str:
    return f"pending#{zlib.crc32(conversation_id.encode()) % PENDING_SHARDS}"


def send_key_sk(key: str) -> str:
    """The conversations-table sort key of a send's Idempotency-Key record (the key itself is never stored)."""
    return "send#" + hashlib.sha256(key.encode()).hexdigest()[:40]


def _pk(project_id: str, conversation_id: str) -> str:
    return f"{project_id}#{conversation_id}"


def list_keys(project_id: str, user_id: str | None, status: str, thread: bool = False) -> dict[str, str]:
    """The list indexes' partitions of a conversation; a thread's are apart (`...#thread#{status}`),
    so the conversation lists leave threads out unless they ask for them."""
    kind = f"thread#{status}" if thread else status
    keys = {"list_project": f"{project_id}#{kind}"}
    if user_id is not None:
        keys["list_owner"] = f"{project_id}#{user_id}#{kind}"
    return keys


MESSAGE_SK = "msg#"  # + a message's id: its seq and role (a thread's anchor is named by id)
THREAD_SK = "thread#"  # + a thread's id, in its parent's partition


class _WithPinned(ConversationRecord):
    """A conversation read for a send: with its pinned items (hidden context, summary) when the
    same read brought them all (never stored: a private attribute)."""

    _pinned_read: tuple[list[HiddenRecord], SummaryRecord | None] | None = PrivateAttr(default=None)

    def keep_pinned(self, read: tuple[list[HiddenRecord], SummaryRecord | None]) -> None:
        self._pinned_read = read

    def take_pinned(self) -> tuple[list[HiddenRecord], SummaryRecord | None] | None:
        """What the read brought, once (a second ask finds nothing and queries)."""
        read, self._pinned_read = self._pinned_read, None
        return read


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
    def put_new(self, record: ConversationRecord) -> None:
        item = {"pk": _pk(record.project_id, record.id), "sk": CONVERSATION_SK, **record.stored()}
        write_with_retry(
            lambda: self.client.put_item(
                TableName=self.conversations, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)"
            ),
            what="the conversation",
        )

    def get(self, project_id: str, conversation_id: str, *, with_pinned: bool = False) -> ConversationRecord | None:
        """The conversation (a consistent read: every write of it is conditioned on its version).

        `with_pinned` (a send): its summary comes in the same request (one BatchGetItem: both keys
        are known), and when the conversation never had hidden context (`next_hidden` unset) the
        record carries them, so `pinned(..., record)` needs no query of its own: a send reads the
        conversation, then its window, whatever the length of its history."""
        key = {"pk": {"S": _pk(project_id, conversation_id)}, "sk": {"S": CONVERSATION_SK}}
        if not with_pinned:
            found = self.client.get_item(TableName=self.conversations, Key=key, ConsistentRead=True)
            item = found.get("Item")
            return ConversationRecord(**_strip(from_item(item))) if item else None
        summary_key = {"pk": key["pk"], "sk": {"N": str(SUMMARY_SEQ)}}
        requested: dict[str, Any] = {
            self.conversations: {"Keys": [key], "ConsistentRead": True},
            self.messages: {"Keys": [summary_key]},  # eventual, as the pinned query's read is
        }
        conversation: dict[str, Any] | None = None
        summary: dict[str, Any] | None = None
        for attempt in range(8):
            answer = self.client.batch_get_item(RequestItems=requested)
            responses: dict[str, Any] = dict(answer.get("Responses", {}))
            conversation = next(iter(responses.get(self.conversations, [])), conversation)
            summary = next(iter(responses.get(self.messages, [])), summary)
            requested = dict(answer.get("UnprocessedKeys", {}))
            if not requested:
                break
            time.sleep(backoff(attempt))
        else:
            raise unavailable("the conversation")
        if conversation is None:
            return None
        record = _WithPinned(**_strip(from_item(conversation)))
        if record.next_hidden is None:  # no hidden context was ever injected: the summary is all
            record.keep_pinned(([], SummaryRecord(**_strip(from_item(summary))) if summary else None))
        return record

    def replace(self, record: ConversationRecord, expected_version: int) -> None:
        """Write the whole record if nobody changed it since `expected_version`."""
        item = {"pk": _pk(record.project_id, record.id), "sk": CONVERSATION_SK, **record.stored()}
        try:
            write_with_retry(
                lambda: self.client.put_item(
                    TableName=self.conversations,
                    Item=to_item(item),
                    ConditionExpression="#v = :v",
                    ExpressionAttributeNames={"#v": "version"},
                    ExpressionAttributeValues={":v": to_value(expected_version)},
                ),
                what="the conversation",
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise StaleConversation from None
            raise

    def page(
        self,
        project_id: str,
        user_id: str | None,
        statuses: tuple[str, ...],
        limit: int,
        before: str | None,
        include_threads: bool = False,
    ) -> tuple[list[ConversationRecord], str | None]:
        """Newest activity first across the given statuses (and threads too, when asked): one
        bounded query per status (and kind)."""
        index, key = ("by_owner", "list_owner") if user_id is not None else ("by_project", "list_project")
        found: list[ConversationRecord] = []
        kinds = (False, True) if include_threads else (False,)
        for status, thread in ((status, thread) for status in statuses for thread in kinds):
            partition = list_keys(project_id, user_id, status, thread)[key]
            request: dict[str, Any] = {
                "TableName": self.conversations,
                "IndexName": index,
                "KeyConditionExpression": "#k = :k" + (" AND activity < :before" if before else ""),
                "ExpressionAttributeNames": {"#k": key},
                "ExpressionAttributeValues": {":k": {"S": partition}, **({":before": {"S": before}} if before else {})},
                "ScanIndexForward": False,
                "Limit": limit + 1,
            }
            found += [ConversationRecord(**_strip(from_item(i))) for i in self.client.query(**request).get("Items", [])]
        found.sort(key=lambda r: r.activity, reverse=True)
        page, more = found[:limit], len(found) > limit
        return page, (page[-1].activity if more and page else None)

    def delete_conversation(self, record: ConversationRecord) -> None:
        """Delete a conversation (or a thread) and everything it holds, resumably: a delete that
        fails half-way is finished by the next one.

        1. Mark the item (`deleting_at`, out of the list indexes, its version moved): from then
           on every route answers 404, and every write to it fails its condition (all are
           conditioned on the version; sessions, summaries and threads on the mark itself), so
           nothing new lands in what is being purged.
        2. A conversation's threads, each the same way (mark, purge, item), then its
           `thread#` item, found by a consistent query of the parent's partition.
        3. The partitions (messages, sessions, send keys, message index), then the item itself
           last (its REMOVE is chat.conversation_deleted), then a thread's `thread#` item in
           its parent's partition.
        A retry finds the marked item (services.conversations.delete) and runs all of it again:
        every step is idempotent."""
        project_id = record.project_id
        if record.deleting_at is None:
            self._mark_deleting(project_id, record.id)
        if record.parent_id is None:
            self._delete_threads(project_id, record.id)
        self._delete_one(project_id, record.id, record.parent_id)

    def _mark_deleting(self, project_id: str, conversation_id: str) -> None:
        try:
            write_with_retry(
                lambda: self.client.update_item(
                    TableName=self.conversations,
                    Key={"pk": {"S": _pk(project_id, conversation_id)}, "sk": {"S": CONVERSATION_SK}},
                    UpdateExpression="SET deleting_at = :at ADD #version :one REMOVE list_project, list_owner",
                    ConditionExpression="attribute_exists(pk) AND attribute_not_exists(deleting_at)",
                    ExpressionAttributeNames={"#version": "version"},
                    ExpressionAttributeValues={":at": {"S": iso()}, ":one": {"N": "1"}},
                ),
                what="the conversation",
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise  # else: marked already (a concurrent delete), or gone

    def _delete_threads(self, project_id: str, parent_id: str) -> None:
        """Every thread of the conversation, a page of `thread#` items at a time (each is removed
        once its thread is gone, so the next query starts where this one ended)."""
        pk = _pk(project_id, parent_id)
        while True:
            page = self.client.query(
                TableName=self.conversations,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": THREAD_SK}},
                ProjectionExpression="sk",
                ConsistentRead=True,
                Limit=25,
            )
            found = [str(item["sk"]["S"]).removeprefix(THREAD_SK) for item in page.get("Items", [])]
            if not found:
                return
            for thread_id in found:
                self._mark_deleting(project_id, thread_id)
                self._delete_one(project_id, thread_id, parent_id)

    def _delete_one(self, project_id: str, conversation_id: str, parent_id: str | None) -> None:
        pk = _pk(project_id, conversation_id)
        self._purge(self.messages, pk, ("pk", "sk"))
        self._purge(self.conversations, pk, ("pk", "sk"), keep=CONVERSATION_SK)
        write_with_retry(
            lambda: self.client.delete_item(
                TableName=self.conversations, Key={"pk": {"S": pk}, "sk": {"S": CONVERSATION_SK}}
            ),
            what="the conversation",
        )
        if parent_id is not None:
            write_with_retry(
                lambda: self.client.delete_item(
                    TableName=self.conversations,
                    Key={"pk": {"S": _pk(project_id, parent_id)}, "sk": {"S": THREAD_SK + conversation_id}},
                ),
                what="the thread",
            )

    def _purge(self, table: str, pk: str, key_names: tuple[str, str], keep: str | None = None) -> None:
        """Every item of the partition but the one whose sk is `keep`."""
        request: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ProjectionExpression": "pk, sk",
        }
        while True:
            page = self.client.query(**request)
            items = [i for i in page.get("Items", []) if keep is None or i["sk"].get("S") != keep]
            keys = [{name: item[name] for name in key_names} for item in items]
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
    def put_session(self, project_id: str, conversation_id: str, session: SessionRecord) -> None:
        pk = _pk(project_id, conversation_id)
        item = {"pk": pk, "sk": f"session#{session.id}", **session.stored()}
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self.conversations,
                            "Key": {"pk": {"S": pk}, "sk": {"S": CONVERSATION_SK}},
                            # not while it is being deleted: nothing may land in a partition being purged
                            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(deleting_at)",
                        }
                    },
                    {"Put": {"TableName": self.conversations, "Item": to_item(item)}},
                ]
            )
        except ClientError as error:
            if error_code(error) == "TransactionCanceledException" and REASON_CONDITION in cancellation_reasons(error):
                raise NotFound(f"No conversation {conversation_id!r}.", code="conversation_not_found") from None
            raise

    def sessions(
        self, project_id: str, conversation_id: str, limit: int, after: str | None
    ) -> tuple[list[SessionRecord], str | None]:
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
        return [SessionRecord(**_strip(from_item(i))) for i in page.get("Items", [])], (
            str(last["sk"]["S"]).removeprefix("session#") if last else None
        )

    def get_session(self, project_id: str, conversation_id: str, session_id: str) -> SessionRecord | None:
        found = self.client.get_item(
            TableName=self.conversations,
            Key={"pk": {"S": _pk(project_id, conversation_id)}, "sk": {"S": f"session#{session_id}"}},
        )
        item = found.get("Item")
        return SessionRecord(**_strip(from_item(item))) if item else None

    # threads
    def message_seq(self, project_id: str, conversation_id: str, message_id: str) -> tuple[int, str] | None:
        """A visible message's seq and role, by its id (one read of the index item its append wrote)."""
        found = self.client.get_item(
            TableName=self.conversations,
            Key={"pk": {"S": _pk(project_id, conversation_id)}, "sk": {"S": MESSAGE_SK + message_id}},
            ConsistentRead=True,
        )
        item = found.get("Item")
        return (int(item["seq"]["N"]), str(item["role"]["S"])) if item else None

    def put_thread(self, record: ConversationRecord) -> bool:
        """Store a thread and its `thread#` item in the parent's partition, in one transaction, if
        the parent is still there, not being deleted and not a thread itself. False otherwise."""
        assert record.parent_id is not None
        parent_pk = _pk(record.project_id, record.parent_id)
        marker = {"pk": parent_pk, "sk": THREAD_SK + record.id, "thread_id": record.id, "created_at": record.created_at}
        writes: list[TransactWriteItemTypeDef] = [
            {
                "ConditionCheck": {
                    "TableName": self.conversations,
                    "Key": {"pk": {"S": parent_pk}, "sk": {"S": CONVERSATION_SK}},
                    "ConditionExpression": (
                        "attribute_exists(pk) AND attribute_not_exists(deleting_at) AND attribute_not_exists(parent_id)"
                    ),
                }
            },
            {
                "Put": {
                    "TableName": self.conversations,
                    "Item": to_item(
                        {"pk": _pk(record.project_id, record.id), "sk": CONVERSATION_SK, **record.stored()}
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {"Put": {"TableName": self.conversations, "Item": to_item(marker)}},
        ]
        try:
            write_with_retry(lambda: self.client.transact_write_items(TransactItems=writes), what="the thread")
        except ClientError as error:
            if error_code(error) == "TransactionCanceledException" and REASON_CONDITION in cancellation_reasons(error):
                return False
            raise
        return True

    def threads(
        self, project_id: str, parent_id: str, limit: int, after: str | None
    ) -> tuple[list[ConversationRecord], str | None]:
        """A page of the conversation's threads, oldest first: one query of its `thread#` items and
        one BatchGetItem of the threads (a thread being deleted is left out)."""
        pk = _pk(project_id, parent_id)
        request: dict[str, Any] = {
            "TableName": self.conversations,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": THREAD_SK}},
            "ProjectionExpression": "sk",
            "Limit": limit + 1,
        }
        if after:
            request["ExclusiveStartKey"] = {"pk": {"S": pk}, "sk": {"S": THREAD_SK + after}}
        found = [str(i["sk"]["S"]).removeprefix(THREAD_SK) for i in self.client.query(**request).get("Items", [])]
        ids, more = found[:limit], len(found) > limit
        records = {r.id: r for r in self.get_many(project_id, ids)}
        page = [records[i] for i in ids if i in records and records[i].deleting_at is None]
        return page, (ids[-1] if more and ids else None)

    def get_many(self, project_id: str, conversation_ids: list[str]) -> list[ConversationRecord]:
        """The conversation items of up to 100 ids (BatchGetItem, unprocessed keys asked again)."""
        if not conversation_ids:
            return []
        keys: list[Any] = [{"pk": {"S": _pk(project_id, i)}, "sk": {"S": CONVERSATION_SK}} for i in conversation_ids]
        found: list[ConversationRecord] = []
        for attempt in range(8):
            answer = self.client.batch_get_item(
                RequestItems={self.conversations: {"Keys": keys, "ConsistentRead": True}}
            )
            items: list[Any] = list(answer.get("Responses", {}).get(self.conversations, []))
            found += [ConversationRecord(**_strip(from_item(i))) for i in items]
            unprocessed: dict[str, Any] = dict(answer.get("UnprocessedKeys", {}))
            keys = list(unprocessed.get(self.conversations, {}).get("Keys", []))
            if not keys:
                return found
            time.sleep(backoff(attempt))
        raise unavailable("the thread list")

    # messages
    def append_pair(
        self,
        conversation: ConversationRecord,
        user: MessageRecord,
        reply: MessageRecord,
        changes: dict[str, Any],
        send_key: SendKeyRecord | None = None,
        token: str | None = None,
    ) -> None:
        """Write the user message (seq n) and the reply placeholder (n + 1) and move next_seq to
        n + 2, if the conversation is still at next_seq n, at its version and active; with
        `send_key` (a send's Idempotency-Key record), also claim that key, in the same transaction
        (see append_messages)."""
        self.append_messages(conversation, [user, reply], changes, send_key=send_key, token=token)

    def append_messages(
        self,
        conversation: ConversationRecord,
        messages: list[MessageRecord],
        changes: dict[str, Any],
        *,
        send_key: SendKeyRecord | None = None,
        token: str | None = None,
        statuses: tuple[str, ...] = ("active",),
        extra: list[dict[str, Any]] | None = None,
    ) -> None:
        """Write `messages` (at their seqs, from the conversation's next_seq on; a `pending` one
        joins the sparse pending index) and apply `changes` to the conversation item, if it is
        still at its next_seq and version and its status is one of `statuses`; with `send_key`,
        also claim that Idempotency-Key, all in one transaction.

        `token` is the transaction's ClientRequestToken: a retry of the same call (the SDK's,
        after a lost response) is then answered from the committed transaction, never applied
        twice. The cancellation reasons decide what a failure means: the conversation moved
        (StaleConversation: re-read and retry), the key was claimed first (DuplicateSend), a
        conflicting transaction (StaleConversation, after a backoff), throttling (503), an item
        over DynamoDB's limit (413). `extra`: items put in the conversations table in the same
        transaction, each only if it does not exist yet (a response's record)."""
        project, conversation_id = conversation.project_id, conversation.id
        pk = _pk(project, conversation_id)
        if messages:
            changes = {**changes, "last_message_at": messages[-1].created_at}
        names = {f"#f{i}": name for i, name in enumerate(changes)}
        values = {f":f{i}": to_value(value) for i, value in enumerate(changes.values())}
        allowed = {f":status{i}": {"S": status} for i, status in enumerate(statuses)}
        writes: list[TransactWriteItemTypeDef] = [
            {
                "Update": {
                    "TableName": self.conversations,
                    "Key": {"pk": {"S": pk}, "sk": {"S": CONVERSATION_SK}},
                    "UpdateExpression": "SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(changes))),
                    # the version too: every write of the conversation item is conditioned on it,
                    # so none of them is lost to another's stale read (and the version orders events)
                    "ConditionExpression": (
                        f"next_seq = :expected AND #status IN ({', '.join(allowed)}) AND #version = :version"
                    ),
                    "ExpressionAttributeNames": {**names, "#status": "status", "#version": "version"},
                    "ExpressionAttributeValues": {
                        **values,
                        **allowed,
                        ":expected": to_value(conversation.next_seq),
                        ":version": to_value(conversation.version),
                    },
                }
            }
        ]
        for message in messages:
            item = {"pk": pk, "sk": message.seq, **message.stored()}
            if message.status == "pending":
                item["pending_shard"] = pending_shard(conversation_id)
            writes.append(
                {
                    "Put": {
                        "TableName": self.messages,
                        "Item": to_item(item),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        if send_key is not None:
            writes.append(
                {
                    "Put": {
                        "TableName": self.conversations,
                        "Item": to_item({"pk": pk, **send_key.stored()}),
                        "ConditionExpression": "attribute_not_exists(pk) OR expiration < :now",
                        "ExpressionAttributeValues": {":now": {"N": str(int(time.time()))}},
                    }
                }
            )
        # each message's id -> seq (after the key's Put, whose place names a DuplicateSend below)
        writes += [
            {
                "Put": {
                    "TableName": self.conversations,
                    "Item": to_item({"pk": pk, "sk": MESSAGE_SK + m.id, "seq": m.seq, "role": m.role}),
                }
            }
            for m in messages
        ]
        writes += [
            {
                "Put": {
                    "TableName": self.conversations,
                    "Item": to_item(item),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for item in extra or ()
        ]
        request: dict[str, Any] = {"TransactItems": writes}
        if token is not None:
            request["ClientRequestToken"] = token
        try:
            transact_exactly_once(self.client, request)
        except ClientError as error:
            code = error_code(error)
            if code == "TransactionConflictException":
                raise StaleConversation from None
            if code in ("ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"):
                raise unavailable("the message write") from error
            if code == "ValidationException" and "size" in str(error).lower():
                raise too_large("The message") from error
            if code != "TransactionCanceledException":
                raise
            reasons = cancellation_reasons(error)
            if REASON_CONDITION in reasons and messages and self._landed(pk, messages[0]):
                return  # an earlier try of this very request committed; only its answer was lost
            key_at = 1 + len(messages)
            if send_key is not None and len(reasons) > key_at and reasons[key_at] == REASON_CONDITION:
                raise DuplicateSend from None
            if any(r in REASON_THROTTLED for r in reasons):
                raise unavailable("the message write") from error
            if REASON_VALIDATION in reasons:
                raise too_large("The message") from error
            if REASON_CONDITION in reasons or REASON_CONFLICT in reasons:
                raise StaleConversation from None
            raise

    def _landed(self, pk: str, user: MessageRecord) -> bool:
        """Whether this user message is stored at its seq: a retried TransactWriteItems whose first
        try committed (its response lost) fails its conditions when the ClientRequestToken is not
        honoured (an emulator, or a retry after the token's 10 minutes); one read on that path
        tells a lost response from a lost race."""
        found = self.client.get_item(
            TableName=self.messages,
            Key={"pk": {"S": pk}, "sk": {"N": str(user.seq)}},
            ConsistentRead=True,
            ProjectionExpression="id",
        )
        return str(found.get("Item", {}).get("id", {}).get("S", "")) == user.id

    def get_send_key(self, project_id: str, conversation_id: str, key: str) -> SendKeyRecord | None:
        """The live (unexpired) Idempotency-Key record of a send, if any."""
        found = self.client.get_item(
            TableName=self.conversations,
            Key={"pk": {"S": _pk(project_id, conversation_id)}, "sk": {"S": send_key_sk(key)}},
            ConsistentRead=True,
        )
        item = found.get("Item")
        if not item:
            return None
        record = SendKeyRecord(**_strip(from_item(item)), sk=item["sk"]["S"])
        return record if record.expiration >= int(time.time()) else None

    def delete_message(self, conversation: ConversationRecord, message: MessageRecord, changes: dict[str, Any]) -> None:
        """Delete one finished message (and its id index item) and apply `changes` to the
        conversation item, in one transaction conditioned on the conversation's version and the
        message still being there and not pending. The seqs after it keep theirs: a gap, which
        every history read (bounded range queries) steps over. StaleConversation: re-read, retry."""
        pk = _pk(conversation.project_id, conversation.id)
        names = {f"#f{i}": name for i, name in enumerate(changes)}
        values = {f":f{i}": to_value(value) for i, value in enumerate(changes.values())}
        writes: list[TransactWriteItemTypeDef] = [
            {
                "Update": {
                    "TableName": self.conversations,
                    "Key": {"pk": {"S": pk}, "sk": {"S": CONVERSATION_SK}},
                    "UpdateExpression": "SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(changes))),
                    "ConditionExpression": "#version = :version",
                    "ExpressionAttributeNames": {**names, "#version": "version"},
                    "ExpressionAttributeValues": {**values, ":version": to_value(conversation.version)},
                }
            },
            {
                "Delete": {
                    "TableName": self.messages,
                    "Key": {"pk": {"S": pk}, "sk": {"N": str(message.seq)}},
                    "ConditionExpression": "attribute_exists(pk) AND #status <> :pending",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {":pending": {"S": "pending"}},
                }
            },
            {
                "Delete": {
                    "TableName": self.conversations,
                    "Key": {"pk": {"S": pk}, "sk": {"S": MESSAGE_SK + message.id}},
                }
            },
        ]
        try:
            transact_exactly_once(self.client, {"TransactItems": writes})
        except ClientError as error:
            code = error_code(error)
            if code == "TransactionConflictException":
                raise StaleConversation from None
            if code in ("ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"):
                raise unavailable("the message delete") from error
            if code != "TransactionCanceledException":
                raise
            reasons = cancellation_reasons(error)
            if any(r in REASON_THROTTLED for r in reasons):
                raise unavailable("the message delete") from error
            if REASON_CONDITION in reasons or REASON_CONFLICT in reasons:
                raise StaleConversation from None
            raise

    def get_message(self, project_id: str, conversation_id: str, seq: int) -> MessageRecord | None:
        found = self.client.get_item(
            TableName=self.messages,
            Key={"pk": {"S": _pk(project_id, conversation_id)}, "sk": {"N": str(seq)}},
            ConsistentRead=True,
        )
        item = found.get("Item")
        return MessageRecord(**_strip(from_item(item))) if item else None

    def finish_message(self, project_id: str, conversation_id: str, seq: int, fields: dict[str, Any]) -> bool:
        """Set the fields given (a None value removes the attribute) on a reply that is still
        pending. False, and nothing written, when the reply is gone (its conversation was deleted:
        a late write must not bring an item back) or was already finished."""
        fields = {**fields, "pending_shard": None}
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        sets = [f"#f{i} = :f{i}" for i, value in enumerate(fields.values()) if value is not None]
        removes = [f"#f{i}" for i, value in enumerate(fields.values()) if value is None]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        values = {f":f{i}": to_value(v) for i, v in enumerate(fields.values()) if v is not None}

        def write() -> None:
            self.client.update_item(
                TableName=self.messages,
                Key={"pk": {"S": _pk(project_id, conversation_id)}, "sk": {"N": str(seq)}},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk) AND #pending_status = :pending",
                ExpressionAttributeNames={**names, "#pending_status": "status"},
                ExpressionAttributeValues={**values, ":pending": {"S": "pending"}},
            )

        try:
            write_with_retry(write, what="the reply")
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def interrupt_stale(
        self, project_id: str, conversation_id: str, seq: int, created_at: str, now: datetime | None = None
    ) -> bool:
        """Write back a reply left `pending` by an invocation that died (older than STALE_PENDING)
        as `incomplete`/interrupted. Conditional, so it never races a live writer or a delete."""
        if not _older_than(created_at, STALE_PENDING, now):
            return False
        return self.finish_message(
            project_id,
            conversation_id,
            seq,
            {"status": "incomplete", "error": INTERRUPTED, "completed_at": iso()},
        )

    def stale_pending(self, older_than: str, limit: int = 100) -> list[tuple[str, int, str]]:
        """(pk, seq, created_at) of replies still pending and created before `older_than`: one
        query per shard of the sparse `pending` index, for the scheduled sweep."""
        found: list[tuple[str, int, str]] = []
        for shard in range(PENDING_SHARDS):
            page = self.client.query(
                TableName=self.messages,
                IndexName="pending",
                KeyConditionExpression="pending_shard = :shard AND created_at < :before",
                ExpressionAttributeValues={":shard": {"S": f"pending#{shard}"}, ":before": {"S": older_than}},
                Limit=limit,
            )
            for item in page.get("Items", []):
                found.append((item["pk"]["S"], int(item["sk"]["N"]), item["created_at"]["S"]))
        return found

    def newest(
        self, project_id: str, conversation_id: str, before_seq: int, limit: int
    ) -> tuple[list[WindowLine], bool]:
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
            ProjectionExpression="seq, #r, #s, content, tokens, tool_calls, tool_call_id",
            ExpressionAttributeNames={"#r": "role", "#s": "status"},
        )
        items = [WindowLine(**_strip(from_item(i))) for i in page.get("Items", [])]
        return items, not items or items[-1].seq == 1

    def pinned(
        self, project_id: str, conversation_id: str, record: ConversationRecord | None = None
    ) -> tuple[list[HiddenRecord], SummaryRecord | None]:
        """The hidden context items (in injection order) and the summary, in one bounded query;
        none when `record` was read `with_pinned` and brought them (once: a second ask queries)."""
        if isinstance(record, _WithPinned) and record.id == conversation_id:
            read = record.take_pinned()
            if read is not None:
                return read
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
        summary = next((SummaryRecord(**i) for i in items if int(i["seq"]) == SUMMARY_SEQ), None)
        return [HiddenRecord(**i) for i in items if int(i["seq"]) < SUMMARY_SEQ], summary

    def put_summary(
        self,
        project_id: str,
        conversation_id: str,
        summary: SummaryRecord,
        previous_version: int | None,
        conversation_version: int,
    ) -> int | None:
        """Store a new summary version unless another writer stored one first, or the conversation
        is gone (then None: a summary finishing after a delete must not bring the partition back);
        the conversation's version after the write when it was stored.
        The conversation's version moves with it (conditioned, as every write of the conversation
        item is; the summary keeps the new version as its event's sequence): when another write
        moved the version first, the version is read again and the write retried."""
        pk = _pk(project_id, conversation_id)
        version = conversation_version
        for attempt in range(8):
            stored = summary.model_copy(update={"event_seq": version + 1})
            item = {**stored.stored(), "pk": pk, "sk": SUMMARY_SEQ, "seq": SUMMARY_SEQ}
            put: dict[str, Any] = {"TableName": self.messages, "Item": to_item(item)}
            if previous_version is None:
                put["ConditionExpression"] = "attribute_not_exists(pk)"
            else:
                put["ConditionExpression"] = "#v = :v"
                put["ExpressionAttributeNames"] = {"#v": "version"}
                put["ExpressionAttributeValues"] = {":v": to_value(previous_version)}
            writes: list[TransactWriteItemTypeDef] = [
                {
                    "Update": {
                        "TableName": self.conversations,
                        "Key": {"pk": {"S": pk}, "sk": {"S": CONVERSATION_SK}},
                        "UpdateExpression": "SET #version = :new_version",
                        "ConditionExpression": "attribute_exists(pk) AND #version = :version",
                        "ExpressionAttributeNames": {"#version": "version"},
                        "ExpressionAttributeValues": {
                            ":version": to_value(version),
                            ":new_version": to_value(version + 1),
                        },
                    }
                },
                {"Put": put},  # type: ignore[typeddict-item]
            ]
            try:
                self.client.transact_write_items(TransactItems=writes)
            except ClientError as error:
                code, reasons = error_code(error), cancellation_reasons(error)
                if code == "TransactionCanceledException" and len(reasons) > 1 and reasons[1] == REASON_CONDITION:
                    return None  # another summary version was stored first
                if code == "TransactionCanceledException" and reasons and reasons[0] == REASON_CONDITION:
                    current = self._version(pk)
                    if current is None:
                        return None  # the conversation is gone
                    version = current  # another write moved it: again, at its version
                    continue
                conflict = code == "TransactionConflictException" or REASON_CONFLICT in reasons
                if conflict and attempt < 7:
                    time.sleep(backoff(attempt))
                    continue
                if conflict or any(r in REASON_THROTTLED for r in reasons):
                    raise unavailable("the summary write") from error
                raise
            return version + 1
        raise unavailable("the summary write")

    def _version(self, pk: str) -> int | None:
        found = self.client.get_item(
            TableName=self.conversations,
            Key={"pk": {"S": pk}, "sk": {"S": CONVERSATION_SK}},
            ConsistentRead=True,
            ProjectionExpression="#version, deleting_at",
            ExpressionAttributeNames={"#version": "version"},
        )
        item = found.get("Item")
        return int(item["version"]["N"]) if item and "deleting_at" not in item else None  # gone, or going

    def add_hidden(self, conversation: ConversationRecord, item: HiddenRecord) -> None:
        """Store a hidden context item as number conversation.next_hidden (StaleConversation if it moved)."""
        project, conversation_id = conversation.project_id, conversation.id
        number = conversation.next_hidden or 1
        pk = _pk(project, conversation_id)
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.conversations,
                            "Key": {"pk": {"S": pk}, "sk": {"S": CONVERSATION_SK}},
                            "UpdateExpression": "SET next_hidden = :next, #version = :new_version",
                            "ConditionExpression": "attribute_exists(pk) AND #version = :version",
                            "ExpressionAttributeNames": {"#version": "version"},
                            "ExpressionAttributeValues": {
                                ":next": to_value(number + 1),
                                ":version": to_value(conversation.version),
                                ":new_version": to_value(conversation.version + 1),
                            },
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.messages,
                            "Item": to_item(
                                {**item.stored(), "pk": pk, "sk": HIDDEN_BASE + number, "seq": HIDDEN_BASE + number}
                            ),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as error:
            code, reasons = error_code(error), cancellation_reasons(error)
            if any(r in REASON_THROTTLED for r in reasons):
                raise unavailable("the context write") from error
            if REASON_VALIDATION in reasons:
                raise too_large("The hidden context") from error
            if code in ("TransactionCanceledException", "TransactionConflictException"):
                raise StaleConversation from None
            raise

    def message_range(
        self, project_id: str, conversation_id: str, low: int, high: int, descending: bool
    ) -> list[MessageRecord]:
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
        return [MessageRecord(**_strip(from_item(i))) for i in page.get("Items", [])]


STALE_RETRY_SECONDS = 10.0  # well inside API Gateway's 29 s for buffered routes


def retry_stale(
    attempt: Callable[[], Any],
    *,
    tries: int = 30,
    within: float = STALE_RETRY_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    """Run `attempt` again (re-reading inside it) while another writer wins the race: at least
    `tries` times, and for as long as `within` seconds allow (a burst of senders on one
    conversation each win in turn), with jittered backoff; then 409 `conversation_busy`."""
    deadline = clock() + within
    n = 0
    while True:
        try:
            return attempt()
        except StaleConversation:
            n += 1
            if n >= tries and clock() >= deadline:
                break
            sleep(backoff(min(n, 6), base=0.005, cap=0.2))
    raise Conflict("The conversation is too busy right now; retry the request.", code="conversation_busy")


def message_from_item(item: MessageRecord, now: datetime | None = None) -> Message:
    """A stored message as the API shows it. A reply still `pending` after the longest an
    invocation can run (its function died mid-way, e.g. timed out) is shown as `incomplete`."""
    if is_stale_pending(item, now):
        item = item.model_copy(update={"status": "incomplete", "error": INTERRUPTED})
    return Message(
        id=item.id,
        conversation_id=item.conversation_id,
        seq=item.seq,
        role=item.role,
        content=item.content,
        status=item.status,
        tool_calls=[ToolCall(**t) for t in item.tool_calls] if item.tool_calls else None,
        tool_call_id=item.tool_call_id,
        author=Author(**item.author) if item.author else None,
        agent_id=item.agent_id,
        agent_version=item.agent_version,
        attachments=item.attachments,
        model=item.model,
        provider_id=item.provider_id,
        session_id=item.session_id,
        usage=Usage(**item.usage) if item.usage else None,
        cost=Cost(amount_usd=float(Decimal(item.cost_usd))) if item.cost_usd is not None else None,
        error=item.error,
        citations=item.cited() or None,
        created_at=item.created_at,
    )


def is_stale_pending(item: MessageRecord, now: datetime | None = None) -> bool:
    """A reply still `pending` after the longest an invocation can run: its invocation died."""
    return item.status == "pending" and _older_than(item.created_at, STALE_PENDING, now)


def _older_than(timestamp: str, age: timedelta, now: datetime | None) -> bool:
    created = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (now or datetime.now(UTC)) - created > age


def _strip(data: dict[str, Any]) -> dict[str, Any]:
    for key in ("pk", "sk", "list_project", "list_owner", "pending_shard"):
        data.pop(key, None)
    return data
