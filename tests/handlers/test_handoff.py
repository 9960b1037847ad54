"""Handoffs through their handlers, on moto: to a human (held sends, operator replies, resolve)
and to an agent, the lists, Idempotency-Key, seed 001's edge cases, and each way the handoff
transactions can fail (tests/handlers/faults.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from parley.aws import clients
from parley.domain.agents import AgentCreate
from parley.domain.principal import Principal
from parley.runtime.pipeline import Pipeline
from parley.services import agents as agent_service
from parley.settings import get_settings
from parley.storage.conversations import ConversationStore
from tests.handlers.api import Api, Reply
from tests.handlers.faults import Faults, cancelled, commit_then_lose_response, error, on_table, run_first
from tests.unit.test_event_catalogue import schema_of

OWNER = Principal("org_a", "proj_a", "key_a", ("*",))
STRANGER = Principal("org_b", "proj_b", "key_b", ("*",))
OPERATOR = {"type": "human", "id": "op_7", "name": "Dana"}


@dataclass(frozen=True)
class Agent:
    id: str
    name: str


AGENTS: dict[str, Agent] = {}


@pytest.fixture(autouse=True)
def agents(aws: None) -> None:
    """The project's agent to hand off to (a real one, through the agents service)."""
    made = agent_service.create(OWNER, AgentCreate(name="billing_agent", model="echo", system_prompt="Billing."))
    AGENTS["billing_agent"] = Agent(made.id, made.name)


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def path(cid: str) -> dict[str, str]:
    return {"conversation_id": cid}


def new(api: Api, **fields: Any) -> str:
    reply = api.call("conversations_create", {"title": "Billing", "user_id": "u1", **fields})
    assert reply.status == 201, reply.body
    return str(reply.body["id"])


def send(api: Api, cid: str, content: str, **fields: Any) -> Reply:
    return api.call("messages_create", {"content": content, **fields}, path=path(cid))


def operator(api: Api, cid: str, content: str, **kwargs: Any) -> Reply:
    body = {"role": "assistant", "content": content, "author": OPERATOR}
    return api.call("messages_create", body, path=path(cid), **kwargs)


def hand_off(api: Api, cid: str, to: str = "human", **fields: Any) -> Reply:
    return api.call("handoffs_create", {"to": to, **fields}, path=path(cid))


def resolve(api: Api, cid: str, **fields: Any) -> Reply:
    return api.call("handoffs_resolve", fields, path=path(cid))


def conversation(api: Api, cid: str) -> dict[str, Any]:
    reply = api.call("conversations_get", path=path(cid))
    assert reply.status == 200, reply.body
    return reply.body  # type: ignore[no-any-return]


def history(api: Api, cid: str) -> list[dict[str, Any]]:
    reply = api.call("messages_list", path=path(cid), query={"order": "asc", "limit": "100"})
    assert reply.status == 200, reply.body
    return reply.body["data"]  # type: ignore[no-any-return]


def queue(api: Api, status: str = "pending", **query: str) -> dict[str, Any]:
    reply = api.call("handoff_queue_list", query={"status": status, **query})
    assert reply.status == 200, reply.body
    return reply.body  # type: ignore[no-any-return]


def error_of(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.body["error"]["code"] == code, reply.body
    return reply.body["error"]  # type: ignore[no-any-return]


def items(prefix: str) -> list[dict[str, Any]]:
    """Every conversations-table item whose sort key starts with `prefix` (for what was stored)."""
    table = get_settings().table("conversations")
    found = clients().dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    return [i for i in found if i["sk"]["S"].startswith(prefix)]


# --- to a human ----------------------------------------------------------------------------------


def test_a_human_handoff_holds_sends_takes_operator_replies_and_resolves_with_the_exchange_in_context(
    api: Api, received: list[list[tuple[str, str]]]
) -> None:
    cid = new(api)
    assert send(api, cid, "I was charged twice").status == 200
    calls = len(received)

    created = hand_off(api, cid, reason="Refund over $500", metadata={"queue": "billing"})
    assert created.status == 201, created.body
    handoff = created.body
    assert handoff["id"].startswith("hof_") and handoff["object"] == "handoff"
    assert (handoff["conversation_id"], handoff["status"], handoff["target"]) == (cid, "pending", {"type": "human"})
    assert (handoff["reason"], handoff["metadata"]) == ("Refund over $500", {"queue": "billing"})
    assert handoff["resolved_at"] is handoff["resolution"] is handoff["resolved_by"] is None
    assert conversation(api, cid)["status"] == "handed_off"
    assert [h["id"] for h in queue(api)["data"]] == [handoff["id"]]
    listed = api.call("conversations_list", query={"status": "handed_off"}).body["data"]
    assert [c["id"] for c in listed] == [cid]

    # the user's messages are stored, answered 202 without a model call (streamed or not)
    held = send(api, cid, "Hello? Anyone there?")
    assert held.status == 202, held.body
    assert held.body["object"] == "held_send"
    assert (held.body["reply"], held.body["handed_off"]) == (None, True)
    assert "no model was called" in held.body["note"]
    assert (held.body["message"]["role"], held.body["message"]["content"]) == ("user", "Hello? Anyone there?")
    streamed = send(api, cid, "Still waiting", stream=True)
    assert streamed.status == 202 and isinstance(streamed.body, dict), streamed.body
    assert streamed.body["message"]["content"] == "Still waiting"
    assert len(received) == calls  # no model call

    # an operator replies: an assistant message with its author, no model call
    reply = operator(api, cid, "Hi, I'm Dana. I've refunded the duplicate charge.")
    assert reply.status == 200, reply.body
    assert (reply.body["role"], reply.body["author"], reply.body["status"]) == ("assistant", OPERATOR, "completed")
    assert reply.body["model"] is None and reply.body["usage"] is None
    assert len(received) == calls

    resolved = resolve(
        api, cid, resolution="Refund approved", metadata={"ticket": "T-1042"}, resolved_by={"id": "op_7"}
    )
    assert resolved.status == 200, resolved.body
    body = resolved.body
    assert (body["id"], body["status"], body["resolution"]) == (handoff["id"], "resolved", "Refund approved")
    assert body["resolved_by"] == {"type": "human", "id": "op_7"}
    assert body["metadata"] == {"queue": "billing", "ticket": "T-1042"}
    assert body["resolved_at"] >= body["requested_at"]
    assert conversation(api, cid)["status"] == "active"
    assert queue(api)["data"] == []
    assert [h["id"] for h in queue(api, "resolved")["data"]] == [handoff["id"]]

    # the model answers again, with the whole exchange in its context
    after = send(api, cid, "Thanks! When will I see it?")
    assert after.status == 200, after.body
    assert received[-1][-4:] == [
        ("user", "Hello? Anyone there?"),
        ("user", "Still waiting"),
        ("assistant", "Hi, I'm Dana. I've refunded the duplicate charge."),
        ("user", "Thanks! When will I see it?"),
    ]
    assert ("user", "I was charged twice") in received[-1]
    roles = [(m["role"], (m.get("author") or {}).get("type")) for m in history(api, cid)]
    assert roles == [
        ("user", None),
        ("assistant", None),
        ("user", None),
        ("user", None),
        ("assistant", "human"),
        ("user", None),
        ("assistant", None),
    ]
    assert conversation(api, cid)["message_count"] == 7
    listed = api.call("handoffs_list", path=path(cid)).body
    assert [h["status"] for h in listed["data"]] == ["resolved"] and listed["has_more"] is False


def test_operator_replies_need_their_own_permission_and_a_human_author(api: Api) -> None:
    cid = new(api)
    hand_off(api, cid)
    sender = Principal("org_a", "proj_a", "key_s", ("conversations:SendMessage",))
    refused = operator(api, cid, "hi", principal=sender)
    error = error_of(refused, 403, "permission_denied")
    assert "conversations:PostOperatorMessage" in error["message"]
    assert conversation(api, cid)["message_count"] == 0
    narrow = ["conversations:SendMessage", "conversations:PostOperatorMessage"]
    issued = api.call("api_keys_create", {"name": "inbox", "permissions": narrow})  # a grantable permission
    assert issued.status == 201 and issued.body["permissions"] == narrow, issued.body
    both = Principal("org_a", "proj_a", "key_o", tuple(narrow))
    assert operator(api, cid, "hi", principal=both).status == 200
    # a user's message during the handoff needs only SendMessage
    assert send(api, cid, "thanks").status == 202
    assert api.call("messages_create", {"content": "x"}, path=path(cid), principal=sender).status == 202

    no_author = api.call("messages_create", {"role": "assistant", "content": "x"}, path=path(cid))
    assert error_of(no_author, 400, "author_required")["param"] == "author"
    as_user = api.call(
        "messages_create", {"role": "assistant", "content": "x", "author": {"type": "user"}}, path=path(cid)
    )
    assert error_of(as_user, 400, "author_required")["param"] == "author.type"
    user_with_author = api.call("messages_create", {"content": "x", "author": OPERATOR}, path=path(cid))
    assert error_of(user_with_author, 400, "invalid_request")["param"] == "author"
    with_session = api.call(
        "messages_create", {"role": "assistant", "content": "x", "author": OPERATOR, "session_id": "s"}, path=path(cid)
    )
    assert error_of(with_session, 400, "invalid_request")["param"] == "session_id"
    assert conversation(api, cid)["message_count"] == 3


def test_a_held_send_is_checked_as_any_send_and_keeps_its_attachments(api: Api) -> None:
    cid = new(api)
    document = api.call("documents_create", {"name": "receipt.txt", "content": "Paid twice on 2026-11-30."})
    assert document.status == 201, document.body
    hand_off(api, cid)
    unknown = send(api, cid, "see attached", attachments=["doc_01JZ0000000000000000000000"])
    assert error_of(unknown, 400, "document_not_found")["param"] == "attachments[0]"
    no_session = send(api, cid, "hi", session_id="ses_01JZ0000000000000000000000")
    assert error_of(no_session, 400, "session_not_found")["param"] == "session_id"
    with_operator_attachment = api.call(
        "messages_create",
        {"role": "assistant", "content": "x", "author": OPERATOR, "attachments": [document.body["id"]]},
        path=path(cid),
    )
    assert error_of(with_operator_attachment, 400, "invalid_request")["param"] == "attachments"
    assert conversation(api, cid)["message_count"] == 0
    held = send(api, cid, "see attached", attachments=[document.body["id"]])
    assert held.status == 202 and held.body["message"]["attachments"] == [document.body["id"]]


def test_operator_replies_only_during_a_human_handoff(api: Api) -> None:
    cid = new(api)
    error_of(operator(api, cid, "hi"), 409, "not_handed_off")
    hand_off(api, cid, to="agent:billing_agent")  # an agent handoff is no human's
    error_of(operator(api, cid, "hi"), 409, "not_handed_off")
    assert api.call("conversations_archive", path=path(cid)).status == 200
    error_of(operator(api, cid, "hi"), 409, "conversation_archived")
    assert conversation(api, cid)["message_count"] == 0


# --- seed 001's edge cases -----------------------------------------------------------------------


def test_a_send_to_an_archived_conversation_is_409(api: Api) -> None:
    cid = new(api)
    assert api.call("conversations_archive", path=path(cid)).status == 200
    error_of(send(api, cid, "hello"), 409, "conversation_archived")
    error_of(send(api, cid, "hello", stream=True), 409, "conversation_archived")
    error_of(hand_off(api, cid), 409, "conversation_archived")
    error_of(hand_off(api, cid, to="agent:billing_agent"), 409, "conversation_archived")
    assert items("handoff#") == []


def test_a_handoff_while_one_is_pending_is_409(api: Api) -> None:
    cid = new(api)
    first = hand_off(api, cid).body
    again = error_of(hand_off(api, cid, reason="again"), 409, "handoff_pending")
    assert first["id"] in again["message"]
    error_of(hand_off(api, cid, to="agent:billing_agent"), 409, "handoff_pending")
    assert [h["id"] for h in api.call("handoffs_list", path=path(cid)).body["data"]] == [first["id"]]


def test_resolve_without_a_pending_handoff_is_409(api: Api) -> None:
    cid = new(api)
    error_of(resolve(api, cid), 409, "no_pending_handoff")
    hand_off(api, cid)
    assert resolve(api, cid).status == 200
    error_of(resolve(api, cid), 409, "no_pending_handoff")
    hand_off(api, cid, to="agent:billing_agent")  # resolved at once: nothing left to resolve
    error_of(resolve(api, cid), 409, "no_pending_handoff")


def test_archiving_a_handed_off_conversation_is_refused_until_the_handoff_is_resolved(api: Api) -> None:
    cid = new(api)
    hand_off(api, cid)
    before = conversation(api, cid)
    error_of(api.call("conversations_archive", path=path(cid)), 409, "handoff_pending")
    assert conversation(api, cid) == before
    assert len(queue(api)["data"]) == 1
    resolve(api, cid)
    assert api.call("conversations_archive", path=path(cid)).status == 200


def test_deleting_a_handed_off_conversation_deletes_its_handoffs(api: Api) -> None:
    cid = new(api)
    hand_off(api, cid)
    assert api.call("conversations_delete", path=path(cid)).status == 200
    assert queue(api)["data"] == [] and items("handoff#") == []
    error_of(api.call("handoffs_list", path=path(cid)), 404, "conversation_not_found")


# --- to an agent ---------------------------------------------------------------------------------


def test_a_handoff_to_an_agent_switches_at_once_and_is_resolved_by_the_system(
    api: Api, received: list[list[tuple[str, str]]]
) -> None:
    cid = new(api)
    send(api, cid, "I need help with an invoice")
    store = ConversationStore()
    record = store.get("proj_a", cid)
    assert record is not None
    record.agent_version = 3  # pinned to a version of the previous agent
    store.replace(record.model_copy(update={"version": record.version + 1}), record.version)

    created = hand_off(api, cid, to="agent:billing_agent", reason="A billing question")
    assert created.status == 201, created.body
    handoff = created.body
    agent = AGENTS["billing_agent"]
    assert handoff["status"] == "resolved"
    assert handoff["target"] == {"type": "agent", "agent_id": agent.id}
    assert handoff["resolution"] == "Switched to agent billing_agent."
    assert handoff["resolved_by"] == {"type": "system"}
    switched = store.get("proj_a", cid)
    assert switched is not None
    assert (switched.status, switched.agent_id, switched.agent_version, switched.handoff) == (
        "active",
        agent.id,
        None,
        None,
    )
    assert queue(api)["data"] == [] and [h["id"] for h in queue(api, "resolved")["data"]] == [handoff["id"]]
    # by id too; and the conversation goes on (its history whole: the next reply's context has it)
    by_id = hand_off(api, cid, to=f"agent:{agent.id}")
    assert by_id.status == 201 and by_id.body["target"]["agent_id"] == agent.id
    assert send(api, cid, "Invoice 1042").status == 200
    assert ("user", "I need help with an invoice") in received[-1]
    listed = api.call("handoffs_list", path=path(cid)).body["data"]
    assert [h["id"] for h in listed] == [handoff["id"], by_id.body["id"]]


def test_an_unknown_agent_is_400_and_nothing_changes(api: Api) -> None:
    cid = new(api)
    before = conversation(api, cid)
    refused = error_of(hand_off(api, cid, to="agent:nobody"), 400, "agent_not_found")
    assert refused["param"] == "to"
    assert conversation(api, cid) == before and items("handoff#") == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"to": "robot"}, "to"),
        ({"to": "agent:"}, "to"),
        ({"to": "agent:a b"}, "to"),
        ({}, "to"),
        ({"to": "human", "reason": "x" * 1001}, "reason"),
        ({"to": "human", "reason": ""}, "reason"),
        ({"to": "human", "metadata": {"x": "y" * 9000}}, "metadata"),
        ({"to": "human", "surprise": 1}, "surprise"),
    ],
)
def test_invalid_handoffs_are_400(api: Api, body: dict[str, Any], param: str) -> None:
    cid = new(api)
    reply = api.call("handoffs_create", body, path=path(cid))
    assert reply.status == 400, reply.body
    assert reply.body["error"]["param"] == param


def test_resolve_metadata_is_bounded_after_the_merge(api: Api) -> None:
    cid = new(api)
    hand_off(api, cid, metadata={"a": "x" * 5000})
    refused = error_of(resolve(api, cid, metadata={"b": "y" * 5000}), 400, "invalid_request")
    assert refused["param"] == "metadata"
    assert conversation(api, cid)["status"] == "handed_off"
    assert resolve(api, cid, metadata={"a": "short"}).body["metadata"] == {"a": "short"}


def test_provisioning_adds_the_handoffs_index_to_a_table_saved_without_it(aws: None) -> None:
    """A local state saved before the index existed gets it on the next start (and DynamoDB, like
    moto, builds it from the items already there)."""
    from dataclasses import replace

    from parley.storage.schema import create_missing_indexes, create_tables, spec

    table = spec("conversations")
    older = replace(table, indexes=tuple(i for i in table.indexes if i.name != "handoffs"))
    names = {"conversations": "parley-older-conversations"}
    dynamodb = clients().dynamodb
    create_tables(dynamodb, names, [older])
    dynamodb.put_item(
        TableName=names["conversations"],
        Item={
            "pk": {"S": "p#c"},
            "sk": {"S": "handoff#h"},
            "handoff_queue": {"S": "p#pending"},
            "handoff_at": {"S": "t#h"},
        },
    )
    assert create_missing_indexes(dynamodb, names, [table]) == ["parley-older-conversations/handoffs"]
    assert create_missing_indexes(dynamodb, names, [table]) == []
    found = dynamodb.query(
        TableName=names["conversations"],
        IndexName="handoffs",
        KeyConditionExpression="handoff_queue = :q",
        ExpressionAttributeValues={":q": {"S": "p#pending"}},
    )["Items"]
    assert [i["sk"]["S"] for i in found] == ["handoff#h"]


# --- lists ---------------------------------------------------------------------------------------


def test_history_and_queue_page_oldest_first_with_cursors(api: Api) -> None:
    cids = [new(api) for _ in range(3)]
    pending = [hand_off(api, cid).body["id"] for cid in cids]
    first = queue(api, limit="2")
    assert [h["id"] for h in first["data"]] == pending[:2] and first["has_more"] is True
    rest = queue(api, limit="2", cursor=first["next_cursor"])
    assert [h["id"] for h in rest["data"]] == pending[2:] and rest["has_more"] is False
    assert rest["next_cursor"] is None
    # a cursor of one status is refused by the other, and by another list
    error_of(
        api.call("handoff_queue_list", query={"status": "resolved", "cursor": first["next_cursor"]}),
        400,
        "invalid_cursor",
    )
    wrong = api.call("handoffs_list", path=path(cids[0]), query={"cursor": first["next_cursor"]})
    error_of(wrong, 400, "invalid_cursor")

    cid = cids[0]
    resolve(api, cid)
    ids = [pending[0]]
    for _ in range(2):
        ids.append(hand_off(api, cid).body["id"])
        resolve(api, cid)
    page = api.call("handoffs_list", path=path(cid), query={"limit": "2"}).body
    assert [h["id"] for h in page["data"]] == ids[:2] and page["has_more"] is True
    tail = api.call("handoffs_list", path=path(cid), query={"limit": "2", "cursor": page["next_cursor"]}).body
    assert [h["id"] for h in tail["data"]] == ids[2:] and tail["next_cursor"] is None
    other = api.call("handoffs_list", path=path(cids[1]), query={"cursor": page["next_cursor"]})
    error_of(other, 400, "invalid_cursor")
    # resolved: oldest resolution first
    assert [h["id"] for h in queue(api, "resolved")["data"]] == ids
    assert [h["id"] for h in queue(api)["data"]] == pending[1:]
    error_of(api.call("handoff_queue_list", query={"status": "open"}), 400, "invalid_request")


def test_another_projects_key_gets_404_and_sees_no_handoff(api: Api) -> None:
    cid = new(api)
    hof = hand_off(api, cid).body["id"]
    for function, body in (
        ("handoffs_create", {"to": "human"}),
        ("handoffs_create", {"to": "agent:billing_agent"}),
        ("handoffs_resolve", {}),
        ("handoffs_list", None),
    ):
        reply = api.call(function, body, path=path(cid), principal=STRANGER)
        error_of(reply, 404, "conversation_not_found")
    for sent in ({"content": "hi"}, {"role": "assistant", "content": "hi", "author": OPERATOR}):
        error_of(api.call("messages_create", sent, path=path(cid), principal=STRANGER), 404, "conversation_not_found")
    for status in ("pending", "resolved"):
        listed = api.call("handoff_queue_list", query={"status": status}, principal=STRANGER)
        assert listed.status == 200 and listed.body["data"] == []
    assert [h["id"] for h in queue(api)["data"]] == [hof]
    assert conversation(api, cid)["status"] == "handed_off"


# --- Idempotency-Key -----------------------------------------------------------------------------


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def test_idempotency_keys_on_handoff_and_resolve(api: Api) -> None:
    cid = new(api)
    first = api.call("handoffs_create", {"to": "human"}, path=path(cid), headers=key("h-1"))
    again = api.call("handoffs_create", {"to": "human"}, path=path(cid), headers=key("h-1"))
    assert (first.status, again.status) == (201, 201)
    assert again.body == first.body and again.headers["Idempotent-Replayed"] == "true"
    assert len(items("handoff#")) == 1
    other = api.call("handoffs_create", {"to": "human", "reason": "x"}, path=path(cid), headers=key("h-1"))
    error_of(other, 409, "idempotency_key_reused")
    done = api.call("handoffs_resolve", {"resolution": "ok"}, path=path(cid), headers=key("r-1"))
    redo = api.call("handoffs_resolve", {"resolution": "ok"}, path=path(cid), headers=key("r-1"))
    assert (done.status, redo.status) == (200, 200)  # the retry answers the resolution, not 409
    assert redo.body == done.body and redo.headers["Idempotent-Replayed"] == "true"


def test_idempotency_keys_on_held_sends_and_operator_replies(api: Api) -> None:
    cid = new(api)
    hand_off(api, cid)
    first = api.call("messages_create", {"content": "hello"}, path=path(cid), headers=key("s-1"))
    again = api.call("messages_create", {"content": "hello"}, path=path(cid), headers=key("s-1"))
    streamed = api.call("messages_create", {"content": "hello", "stream": True}, path=path(cid), headers=key("s-1"))
    assert (first.status, again.status, streamed.status) == (202, 202, 202)
    assert again.body == first.body == streamed.body
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    error_of(
        api.call("messages_create", {"content": "bye"}, path=path(cid), headers=key("s-1")),
        409,
        "idempotency_key_reused",
    )

    reply = operator(api, cid, "On it", headers=key("o-1"))
    redo = operator(api, cid, "On it", headers=key("o-1"))
    assert (reply.status, redo.status) == (200, 200)
    assert redo.body == reply.body and redo.headers["Idempotent-Replayed"] == "true"
    # the same key and text as a user's message is another request
    as_user = api.call("messages_create", {"content": "On it"}, path=path(cid), headers=key("o-1"))
    error_of(as_user, 409, "idempotency_key_reused")
    assert conversation(api, cid)["message_count"] == 2
    # after the resolution, a retry still answers what was stored
    resolve(api, cid)
    late = api.call("messages_create", {"content": "hello"}, path=path(cid), headers=key("s-1"))
    assert (late.status, late.body) == (202, first.body)
    assert conversation(api, cid)["message_count"] == 2


# --- the transactions' failures, deterministically -----------------------------------------------


def handoff_writes(request: dict[str, Any]) -> bool:
    """A handoff transaction: the conversation's move and a handoff item."""
    puts = [i.get("Put", {}).get("Item", {}).get("sk", {}).get("S", "") for i in request.get("TransactItems", [])]
    return any(sk.startswith("handoff#") for sk in puts)


def state(api: Api, cid: str) -> tuple[str, int]:
    return conversation(api, cid)["status"], len(items("handoff#"))


@pytest.mark.parametrize(
    "fault",
    [
        cancelled("ConditionalCheckFailed", "None"),  # the conversation moved: read again, nothing changed
        cancelled("None", "TransactionConflict"),
        error("TransactionConflictException"),
        commit_then_lose_response(sdk_retries=True),  # the SDK's retry, answered from the token
        commit_then_lose_response(sdk_retries=True, tokens_honoured=False),  # the retry fails: it landed
        commit_then_lose_response(sdk_retries=False),  # a read timeout: sent again with its token
    ],
    ids=["condition", "conflict-reason", "conflict-exception", "lost-response", "lost-no-token", "timeout"],
)
@pytest.mark.parametrize("to", ["human", "agent:billing_agent"])
def test_a_handoff_that_meets_a_transient_failure_is_stored_once(api: Api, faults: Faults, fault: Any, to: str) -> None:
    cid = new(api)
    rule = faults.inject("transact_write_items", fault, when=handoff_writes)
    created = hand_off(api, cid, to=to)
    assert created.status == 201, created.body
    assert rule.fired == 1
    assert state(api, cid) == ("handed_off" if to == "human" else "active", 1)
    stored = api.call("handoffs_list", path=path(cid)).body["data"]
    assert [h["id"] for h in stored] == [created.body["id"]]


@pytest.mark.parametrize("reason", ["ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"])
def test_a_throttled_handoff_is_503_and_stores_nothing(api: Api, faults: Faults, reason: str) -> None:
    cid = new(api)
    faults.inject("transact_write_items", cancelled("None", reason), when=handoff_writes)
    reply = hand_off(api, cid)
    assert error_of(reply, 503, "storage_throttled") and reply.headers.get("Retry-After") == "1"
    assert state(api, cid) == ("active", 0)


def test_a_handoff_item_over_the_size_limit_is_413(api: Api, faults: Faults) -> None:
    cid = new(api)
    faults.inject("transact_write_items", cancelled("None", "ValidationError"), when=handoff_writes)
    error_of(hand_off(api, cid), 413, "item_too_large")
    assert state(api, cid) == ("active", 0)


def test_a_handoff_losing_the_race_to_an_archive_or_another_handoff_is_409(api: Api, faults: Faults) -> None:
    cid = new(api)
    faults.inject(
        "transact_write_items",
        run_first(lambda: api.call("conversations_archive", path=path(cid))),
        when=handoff_writes,
    )
    error_of(hand_off(api, cid), 409, "conversation_archived")
    assert state(api, cid) == ("archived", 0)

    other = new(api)
    faults.inject("transact_write_items", run_first(lambda: hand_off(api, other, reason="first")), when=handoff_writes)
    error_of(hand_off(api, other, reason="second"), 409, "handoff_pending")
    assert [h["reason"] for h in api.call("handoffs_list", path=path(other)).body["data"]] == ["first"]


def test_a_handoff_racing_a_send_is_retried_at_the_new_version(api: Api, faults: Faults) -> None:
    cid = new(api)
    faults.inject("transact_write_items", run_first(lambda: send(api, cid, "meanwhile")), when=handoff_writes)
    assert hand_off(api, cid).status == 201
    assert conversation(api, cid)["message_count"] == 2 and state(api, cid) == ("handed_off", 1)


def resolve_writes(request: dict[str, Any]) -> bool:
    """The resolve transaction (it puts the handoff over its pending self)."""
    return handoff_writes(request) and any(
        "ConditionExpression" in i.get("Put", {}) and "#s" in i["Put"]["ConditionExpression"]
        for i in request["TransactItems"]
    )


@pytest.mark.parametrize(
    "fault",
    [
        cancelled("ConditionalCheckFailed", "None"),
        cancelled("None", "ConditionalCheckFailed"),
        cancelled("TransactionConflict", "None"),
        error("TransactionConflictException"),
        commit_then_lose_response(sdk_retries=True, tokens_honoured=False),
        commit_then_lose_response(sdk_retries=False),
    ],
    ids=["condition-conversation", "condition-handoff", "conflict-reason", "conflict-exception", "lost", "timeout"],
)
def test_a_resolve_that_meets_a_transient_failure_resolves_once(api: Api, faults: Faults, fault: Any) -> None:
    cid = new(api)
    hof = hand_off(api, cid).body["id"]
    rule = faults.inject("transact_write_items", fault, when=resolve_writes)
    done = resolve(api, cid, resolution="ok")
    assert done.status == 200, done.body
    assert rule.fired == 1
    assert (done.body["id"], done.body["status"]) == (hof, "resolved")
    assert state(api, cid) == ("active", 1)


def test_a_resolve_throttled_is_503_and_one_losing_to_another_resolve_is_409(api: Api, faults: Faults) -> None:
    cid = new(api)
    hand_off(api, cid)
    faults.inject("transact_write_items", cancelled("ThrottlingError", "None"), when=resolve_writes)
    error_of(resolve(api, cid), 503, "storage_throttled")
    assert state(api, cid) == ("handed_off", 1)
    faults.inject("transact_write_items", run_first(lambda: resolve(api, cid, resolution="first")), when=resolve_writes)
    error_of(resolve(api, cid, resolution="second"), 409, "no_pending_handoff")
    assert api.call("handoffs_list", path=path(cid)).body["data"][0]["resolution"] == "first"


def test_a_held_send_racing_the_resolution_gets_a_model_reply(api: Api, faults: Faults) -> None:
    cid = new(api)
    hand_off(api, cid)

    def held(request: dict[str, Any]) -> bool:
        return on_table("messages")(request) and len(request["TransactItems"]) == 3  # the item, a message, its id

    rule = faults.inject("transact_write_items", run_first(lambda: resolve(api, cid)), when=held)
    reply = send(api, cid, "hello?")
    assert rule.fired == 1
    assert reply.status == 200, reply.body
    assert reply.body["role"] == "assistant" and reply.body["status"] == "completed"
    assert [m["role"] for m in history(api, cid)] == ["user", "assistant"]


def test_a_send_that_read_the_conversation_before_the_handoff_is_409_and_held_when_retried(
    api: Api, faults: Faults, received: list[list[tuple[str, str]]]
) -> None:
    cid = new(api)

    def pair(request: dict[str, Any]) -> bool:
        return on_table("messages")(request) and len(request["TransactItems"]) >= 3  # the conversation, a pair

    rule = faults.inject("transact_write_items", run_first(lambda: hand_off(api, cid)), when=pair)
    raced = api.call("messages_create", {"content": "hi"}, path=path(cid), headers=key("race-1"))
    assert rule.fired == 1
    error_of(raced, 409, "conversation_handed_off")
    assert history(api, cid) == [] and received == []
    retried = api.call("messages_create", {"content": "hi"}, path=path(cid), headers=key("race-1"))
    assert retried.status == 202 and retried.body["message"]["content"] == "hi"


def test_an_operator_reply_racing_the_resolution_is_409(api: Api, faults: Faults) -> None:
    cid = new(api)
    hand_off(api, cid)
    faults.inject("transact_write_items", run_first(lambda: resolve(api, cid)), when=on_table("messages"))
    error_of(operator(api, cid, "late"), 409, "not_handed_off")
    assert history(api, cid) == []


def test_a_held_send_throttled_is_503_and_stores_nothing(api: Api, faults: Faults) -> None:
    cid = new(api)
    hand_off(api, cid)
    faults.inject("transact_write_items", cancelled("None", "ThrottlingError"), when=on_table("messages"))
    error_of(send(api, cid, "hello"), 503, "storage_throttled")
    assert history(api, cid) == []


# --- events --------------------------------------------------------------------------------------


def published() -> list[dict[str, Any]]:
    sqs = clients().sqs
    url = sqs.get_queue_url(QueueName=get_settings().events_queue)["QueueUrl"]
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        found += [json.loads(m["Body"])["detail"] for m in batch]
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
    return sorted(found, key=lambda d: d["sequence"] or 0)


def test_handoffs_are_events_with_reason_target_metadata_and_who_resolved(api: Api, pipeline: Pipeline) -> None:
    cid = new(api)
    pipeline.drain()
    published()
    hof = hand_off(api, cid, reason="Refund over $500", metadata={"queue": "billing"}).body["id"]
    send(api, cid, "hello?")
    operator(api, cid, "Refunded.")
    resolve(api, cid, resolution="Refund approved", resolved_by={"id": "op_7", "name": "Dana"})
    agent = hand_off(api, cid, to="agent:billing_agent").body["id"]
    pipeline.drain()
    events = published()
    assert [e["type"] for e in events] == [
        "chat.handoff_requested",
        "chat.message_sent",
        "chat.response_completed",
        "chat.handoff_resolved",
        "chat.handoff_requested",
        "chat.handoff_resolved",
    ]
    sequences = [e["sequence"] for e in events]
    assert sequences == sorted(set(sequences))
    for event in events:
        schema_of(event["type"]).validate(event)
    requested, _, operator_reply, resolved, switch, switched = (e["data"] for e in events)
    assert (requested["handoff_id"], requested["target"], requested["reason"]) == (hof, "human", "Refund over $500")
    assert requested["metadata"] == {"queue": "billing"} and requested["resolved_by"] is None
    assert requested["user_id"] == "u1"
    assert operator_reply["author"] == {"type": "human", "id": "op_7", "name": "Dana"}
    assert operator_reply["model"] is None and operator_reply["content"] == "Refunded."
    assert (resolved["handoff_id"], resolved["resolution"]) == (hof, "Refund approved")
    assert resolved["resolved_by"] == {"type": "human", "id": "op_7", "name": "Dana"}
    assert (switch["handoff_id"], switch["target"], switch["agent_id"]) == (agent, "agent", AGENTS["billing_agent"].id)
    assert switched["resolved_by"] == {"type": "system", "id": None, "name": None}
    assert switched["resolution"] == "Switched to agent billing_agent."
    # the conversation item's status changes to handed_off and back are no events of their own
    api.call("conversations_delete", path=path(cid))
    pipeline.drain()
    assert [e["type"] for e in published()] == ["chat.conversation_deleted"]
