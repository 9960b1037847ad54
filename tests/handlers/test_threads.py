"""Threads through their handlers, on moto: sub-conversations anchored to a message of their
parent, stored as conversations of their own (a `thr_` id works on every conversation route)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley.api.routing import RouteTable
from parley.aws import clients
from parley.domain.principal import Principal
from parley.runtime.pipeline import Pipeline
from parley.settings import get_settings
from tests.handlers.api import Api
from tests.handlers.faults import Faults, error

OWNER = Principal("org_a", "proj_a", "key_a", ("*",))
STRANGER = Principal("org_b", "proj_b", "key_b", ("*",))
PROMPT = "You help with billing."


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def conversation(api: Api, **body: Any) -> str:
    reply = api.call("conversations_create", {"title": "Billing", "user_id": "u1", "system_prompt": PROMPT, **body})
    assert reply.status == 201, reply.body
    return str(reply.body["id"])


def send(api: Api, cid: str, content: str) -> dict[str, Any]:
    reply = api.call("messages_create", {"content": content}, path={"conversation_id": cid})
    assert reply.status == 200, reply.body
    return reply.body  # type: ignore[no-any-return]


def history(api: Api, cid: str) -> list[dict[str, Any]]:
    reply = api.call("messages_list", path={"conversation_id": cid}, query={"order": "asc", "limit": "100"})
    assert reply.status == 200, reply.body
    return reply.body["data"]  # type: ignore[no-any-return]


def thread(api: Api, cid: str, anchor: str, **body: Any) -> dict[str, Any]:
    reply = api.call("threads_create", {"parent_message_id": anchor, **body}, path={"conversation_id": cid})
    assert reply.status == 201, reply.body
    return reply.body  # type: ignore[no-any-return]


def context(api: Api, cid: str) -> dict[str, Any]:
    reply = api.call("context_get", path={"conversation_id": cid})
    assert reply.status == 200, reply.body
    return reply.body  # type: ignore[no-any-return]


def items_of(*ids: str) -> list[str]:
    """Every item of the conversations and messages tables that names one of `ids` (a test may scan)."""
    found: list[str] = []
    for logical in ("conversations", "messages"):
        request: dict[str, Any] = {"TableName": get_settings().table(logical), "ConsistentRead": True}
        while True:
            page = clients().dynamodb.scan(**request)
            found += [json.dumps(i) for i in page["Items"] if any(x in json.dumps(i) for x in ids)]
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return found


# ---- create and list ----------------------------------------------------------------------------


def test_create_and_list_threads_with_cursors(api: Api) -> None:
    cid = conversation(api, metadata={"page": "/billing"})
    send(api, cid, "Why was I charged twice?")
    send(api, cid, "And the refund?")
    messages = history(api, cid)
    first = thread(api, cid, messages[1]["id"], title="About the charge", metadata={"ticket": 7})
    assert first["id"].startswith("thr_")
    assert {k: first[k] for k in ("object", "conversation_id", "parent_message_id", "parent_message_seq")} == {
        "object": "thread",
        "conversation_id": cid,
        "parent_message_id": messages[1]["id"],
        "parent_message_seq": 2,
    }
    assert (first["title"], first["metadata"], first["status"]) == ("About the charge", {"ticket": 7}, "active")
    assert (first["message_count"], first["last_message_at"], first["include_parent_history"]) == (0, None, False)
    second = thread(api, cid, messages[0]["id"])
    third = thread(api, cid, messages[3]["id"], include_parent_history=True)

    page = api.call("threads_list", path={"conversation_id": cid}, query={"limit": "2"}).body
    assert (page["object"], page["has_more"]) == ("list", True)
    assert [t["id"] for t in page["data"]] == [first["id"], second["id"]]  # oldest first
    rest = api.call("threads_list", path={"conversation_id": cid}, query={"limit": "2", "cursor": page["next_cursor"]})
    assert ([t["id"] for t in rest.body["data"]], rest.body["has_more"], rest.body["next_cursor"]) == (
        [third["id"]],
        False,
        None,
    )
    everything = api.call("threads_list", path={"conversation_id": cid}, query={"limit": "3"}).body
    assert (len(everything["data"]), everything["has_more"]) == (3, False)  # exactly a page: no empty next one
    other = conversation(api)
    wrong = api.call("threads_list", path={"conversation_id": other}, query={"cursor": page["next_cursor"]})
    assert (wrong.status, wrong.body["error"]["code"]) == (400, "invalid_cursor")
    # the parent is unchanged: a thread is no message of it
    assert api.call("conversations_get", path={"conversation_id": cid}).body["message_count"] == 4


def test_list_counts_a_threads_messages_and_its_last_message(api: Api) -> None:
    cid = conversation(api)
    anchor = send(api, cid, "hello")["id"]
    created = thread(api, cid, anchor)
    reply = send(api, created["id"], "in the thread")
    (listed,) = api.call("threads_list", path={"conversation_id": cid}).body["data"]
    assert (listed["message_count"], listed["last_message_at"]) == (2, reply["created_at"])
    as_conversation = api.call("conversations_get", path={"conversation_id": created["id"]}).body
    assert (as_conversation["id"], as_conversation["parent_id"], as_conversation["parent_message_id"]) == (
        created["id"],
        cid,
        anchor,
    )
    assert "parent_id" not in api.call("conversations_get", path={"conversation_id": cid}).body


@pytest.mark.parametrize(
    ("anchor", "status", "code", "param"),
    [
        ("msg_01JZ00000000000000000000AA", 404, "message_not_found", "parent_message_id"),
        ("thr_01JZ00000000000000000000AA", 404, "message_not_found", "parent_message_id"),
        ("not-an-id", 400, "invalid_request", "parent_message_id"),
    ],
)
def test_an_anchor_that_is_no_message_of_the_conversation_is_refused(
    api: Api, anchor: str, status: int, code: str, param: str
) -> None:
    cid = conversation(api)
    send(api, cid, "hello")
    reply = api.call("threads_create", {"parent_message_id": anchor}, path={"conversation_id": cid})
    assert (reply.status, reply.body["error"]["code"], reply.body["error"]["param"]) == (status, code, param)


def test_a_message_of_another_conversation_is_not_an_anchor(api: Api) -> None:
    cid, other = conversation(api), conversation(api)
    elsewhere = send(api, other, "over there")["id"]
    reply = api.call("threads_create", {"parent_message_id": elsewhere}, path={"conversation_id": cid})
    assert (reply.status, reply.body["error"]["code"]) == (404, "message_not_found")
    assert api.call("threads_list", path={"conversation_id": cid}).body["data"] == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"title": "t" * 513}, "title"),
        ({"metadata": {"x": "y" * 9000}}, "metadata"),
        ({"include_parent_history": "yes"}, "include_parent_history"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_thread_bodies_are_400(api: Api, body: dict[str, Any], param: str) -> None:
    cid = conversation(api)
    anchor = send(api, cid, "hello")["id"]
    reply = api.call("threads_create", {"parent_message_id": anchor, **body}, path={"conversation_id": cid})
    assert (reply.status, reply.body["error"]["param"]) == (400, param)


def test_a_thread_of_a_thread_is_refused_and_an_archived_parent_takes_none(api: Api) -> None:
    cid = conversation(api)
    anchor = send(api, cid, "hello")["id"]
    tid = thread(api, cid, anchor)["id"]
    inner = send(api, tid, "in the thread")["id"]
    nested = api.call("threads_create", {"parent_message_id": inner}, path={"conversation_id": tid})
    assert (nested.status, nested.body["error"]["code"]) == (400, "nested_thread")
    assert api.call("threads_list", path={"conversation_id": tid}).body["data"] == []
    api.call("conversations_archive", path={"conversation_id": cid})
    archived = api.call("threads_create", {"parent_message_id": anchor}, path={"conversation_id": cid})
    assert (archived.status, archived.body["error"]["code"]) == (409, "conversation_archived")


# ---- the context windows ------------------------------------------------------------------------


def test_a_threads_context_starts_with_the_anchor_and_never_enters_the_parents(api: Api, received: list[Any]) -> None:
    cid = conversation(api)
    send(api, cid, "first question")
    reply = send(api, cid, "second question")  # echo: the reply repeats it
    send(api, cid, "third question")
    before = context(api, cid)
    tid = thread(api, cid, reply["id"], title="On the second answer")["id"]

    send(api, tid, "tell me more")
    assert received[-1] == [("system", PROMPT), ("assistant", "second question"), ("user", "tell me more")]
    send(api, tid, "and more")
    assert received[-1] == [
        ("system", PROMPT),
        ("assistant", "second question"),
        ("user", "tell me more"),
        ("assistant", "tell me more"),
        ("user", "and more"),
    ]
    shown = context(api, tid)
    assert shown["thread"]["parent_id"] == cid
    assert shown["thread"]["anchor"] == {
        "message_id": reply["id"],
        "seq": 4,
        "role": "assistant",
        "tokens": shown["thread"]["anchor"]["tokens"],
        "included": True,
    }
    assert shown["thread"]["anchor"]["tokens"] > 0
    assert (shown["thread"]["parent_messages"], shown["total_messages"], shown["context_messages"]) == (0, 4, 4)
    assert shown["last_call"]["thread_anchor_seq"] == 4

    # the parent's window is what it was: the thread's messages are in their own partition
    after = context(api, cid)
    assert after == before
    assert "thread" not in after
    send(api, cid, "back in the parent")
    assert not any("tell me more" in text or "and more" in text for _, text in received[-1])
    assert [m["content"] for m in history(api, cid)][-2:] == ["back in the parent", "back in the parent"]
    assert len(history(api, tid)) == 4


def test_include_parent_history_brings_the_parents_messages_up_to_the_anchor(api: Api, received: list[Any]) -> None:
    cid = conversation(api)
    for text in ("one", "two", "three"):
        send(api, cid, text)
    anchor = history(api, cid)[3]["id"]  # the reply "two"
    tid = thread(api, cid, anchor, include_parent_history=True)["id"]
    send(api, tid, "why two?")
    assert received[-1] == [
        ("system", PROMPT),
        ("user", "one"),
        ("assistant", "one"),
        ("user", "two"),
        ("assistant", "two"),  # the anchor; "three" came after it and stays out
        ("user", "why two?"),
    ]
    shown = context(api, tid)["thread"]
    assert (shown["include_parent_history"], shown["parent_messages"]) == (True, 3)
    assert (shown["parent_from_seq"], shown["parent_to_seq"]) == (1, 3)


def fact(i: int) -> str:
    return f"fact {i}: " + "detail " * 29 + "end"


def test_the_parents_history_fills_only_what_the_budget_leaves(api: Api, received: list[Any]) -> None:
    cid = conversation(api, context={"strategy": "sliding_window", "max_tokens": 300})
    for i in range(8):
        send(api, cid, fact(i))
    anchor = history(api, cid)[-1]["id"]
    tid = thread(api, cid, anchor, include_parent_history=True)["id"]
    send(api, tid, "summarize")
    prompt = received[-1]
    assert prompt[0] == ("system", PROMPT)
    assert prompt[-2] == ("assistant", fact(7))  # the anchor is always in
    assert prompt[-1] == ("user", "summarize")
    parent_turns = prompt[1:-2]
    assert 0 < len(parent_turns) < 15  # the newest that fit, not all fifteen before the anchor
    assert parent_turns[-1] == ("user", fact(7))
    shown = context(api, tid)
    assert shown["context_tokens"] <= shown["max_tokens"] == 300  # the parent's context settings
    assert shown["last_call"]["tokens"] <= 300


def test_a_thread_follows_its_parents_current_settings(api: Api, received: list[Any]) -> None:
    cid = conversation(api)
    anchor = send(api, cid, "hello")["id"]
    tid = thread(api, cid, anchor)["id"]
    updated = api.call("conversations_update", {"system_prompt": "You are terse."}, path={"conversation_id": cid})
    assert updated.status == 200
    send(api, tid, "hi")
    assert received[-1][0] == ("system", "You are terse.")
    own = api.call("conversations_update", {"system_prompt": "Thread rules."}, path={"conversation_id": tid})
    assert (own.status, own.body["system_prompt"]) == (200, "Thread rules.")
    send(api, tid, "again")
    assert received[-1][0] == ("system", "Thread rules.")
    assert api.call("conversations_get", path={"conversation_id": cid}).body["system_prompt"] == "You are terse."


# ---- a thread id on every conversation route ------------------------------------------------------

BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/conversations/{conversation_id}"): {"title": "Thread title", "metadata": {"k": "v"}},
    ("POST", "/v1/conversations/{conversation_id}/messages"): {"content": "in the thread"},
    ("POST", "/v1/conversations/{conversation_id}/sessions"): {"model": "echo"},
    ("POST", "/v1/conversations/{conversation_id}/context"): {"content": "The customer is on the Pro plan."},
    ("POST", "/v1/conversations/{conversation_id}/handoff"): {"to": "human", "reason": "in the thread"},
    ("POST", "/v1/conversations/{conversation_id}/handoff/resolve"): {"resolution": "done"},
}
# what a thread answers on its conversation routes (2xx unless said here)
EXPECTED = {
    ("POST", "/v1/conversations/{conversation_id}/threads"): 400,  # nested_thread
    ("POST", "/v1/conversations/{conversation_id}/handoff/resolve"): 409,  # a fresh thread has none pending
}


def test_a_thread_id_works_on_every_conversation_route(api: Api, route_table: RouteTable) -> None:
    cid = conversation(api)
    anchor = send(api, cid, "hello")["id"]
    routes = [r for r in route_table.routes if r.path.startswith("/v1/conversations/{conversation_id}")]
    assert len(routes) >= 13
    checked = []
    for route in sorted(routes, key=lambda r: r.method == "DELETE"):  # the delete last
        tid = thread(api, cid, anchor)["id"]
        if route.path.endswith("/unarchive"):
            api.call("conversations_archive", path={"conversation_id": tid})
        body = BODIES.get((route.method, route.path))
        if route.path.endswith("/threads") and route.method == "POST":
            body = {"parent_message_id": anchor}
        reply = api.call(route.function, body, path={"conversation_id": tid}, route=route)
        expected = EXPECTED.get((route.method, route.path))
        ok = reply.status == expected if expected else 200 <= reply.status < 300
        assert ok, (route.method, route.path, reply.status, reply.body)
        if route.streaming and isinstance(body, dict):
            streamed = api.call(route.function, {**body, "stream": True}, path={"conversation_id": tid}, route=route)
            assert streamed.status == 200
            assert "event: done" in streamed.body, streamed.body
        checked.append(f"{route.method} {route.path}")
    assert len(checked) == len(routes)


def test_another_projects_key_gets_404_for_threads(api: Api) -> None:
    cid = conversation(api)
    anchor = send(api, cid, "hello")["id"]
    tid = thread(api, cid, anchor)["id"]
    calls = [
        ("threads_create", cid, {"parent_message_id": anchor}),
        ("threads_list", cid, None),
        ("threads_list", tid, None),
        ("conversations_get", tid, None),
        ("messages_create", tid, {"content": "x"}),
        ("messages_list", tid, None),
        ("context_get", tid, None),
        ("conversations_delete", tid, None),
    ]
    for function, target, body in calls:
        reply = api.call(function, body, path={"conversation_id": target}, principal=STRANGER)
        assert (reply.status, reply.body["error"]["type"]) == (404, "not_found_error"), function
    assert len(api.call("threads_list", path={"conversation_id": cid}).body["data"]) == 1
    listed = api.call("conversations_list", principal=STRANGER, query={"include_threads": "true"}).body["data"]
    assert listed == []


def test_conversation_lists_leave_threads_out_unless_asked(api: Api) -> None:
    cid = conversation(api)
    anchor = send(api, cid, "hello")["id"]
    tid = thread(api, cid, anchor)["id"]
    send(api, tid, "newest activity")

    def ids(**query: str) -> list[str]:
        reply = api.call("conversations_list", query=query)
        assert reply.status == 200, reply.body
        return [c["id"] for c in reply.body["data"]]

    assert ids() == [cid]
    assert ids(include_threads="true") == [tid, cid]
    assert ids(include_threads="true", user_id="u1") == [tid, cid]  # the thread has the parent's user
    api.call("conversations_archive", path={"conversation_id": tid})  # status moves keep it a thread
    assert ids(status="all") == [cid]
    assert ids(include_threads="true", status="archived") == [tid]
    first = api.call("conversations_list", query={"include_threads": "true", "status": "all", "limit": "1"}).body
    assert first["has_more"] is True
    mixed = api.call("conversations_list", query={"status": "all", "cursor": first["next_cursor"]})
    assert (mixed.status, mixed.body["error"]["code"]) == (400, "invalid_cursor")
    rest = api.call(
        "conversations_list", query={"include_threads": "true", "status": "all", "cursor": first["next_cursor"]}
    )
    assert [c["id"] for c in first["data"] + rest.body["data"]] == [tid, cid]


# ---- delete ---------------------------------------------------------------------------------------


def a_conversation_with_threads(api: Api) -> tuple[str, list[str]]:
    cid = conversation(api)
    anchor = send(api, cid, "hello")["id"]
    tids = []
    for i in range(3):
        tid = thread(api, cid, anchor, title=f"t{i}")["id"]
        send(api, tid, f"thread {i}")
        api.call("sessions_create", {"model": "echo"}, path={"conversation_id": tid})
        api.call("context_inject", {"content": "hidden"}, path={"conversation_id": tid})
        tids.append(tid)
    return cid, tids


def all_gone(api: Api, cid: str, tids: list[str]) -> None:
    for target in (cid, *tids):
        for function in ("conversations_get", "messages_list", "threads_list", "context_get"):
            reply = api.call(function, path={"conversation_id": target})
            assert reply.status == 404, (function, target, reply.body)
    assert items_of(cid, *tids) == []


def test_deleting_a_conversation_deletes_its_threads_and_their_messages(api: Api) -> None:
    cid, tids = a_conversation_with_threads(api)
    deleted = api.call("conversations_delete", path={"conversation_id": cid})
    assert deleted.body == {"id": cid, "object": "conversation", "deleted": True}
    all_gone(api, cid, tids)
    assert api.call("conversations_list", query={"include_threads": "true", "status": "all"}).body["data"] == []


def test_deleting_a_thread_leaves_its_parent_and_siblings(api: Api) -> None:
    cid, tids = a_conversation_with_threads(api)
    assert api.call("conversations_delete", path={"conversation_id": tids[0]}).status == 200
    assert items_of(tids[0]) == []
    assert [t["id"] for t in api.call("threads_list", path={"conversation_id": cid}).body["data"]] == tids[1:]
    assert len(history(api, cid)) == 2
    assert len(history(api, tids[1])) == 2


def nth(n: int) -> Any:
    """A `when` that matches the n-th call it sees (1-based)."""
    seen = [0]

    def match(request: dict[str, Any]) -> bool:
        seen[0] += 1
        return seen[0] == n

    return match


@pytest.mark.parametrize(
    ("operation", "n"),
    [
        ("batch_write_item", 3),  # purging the second thread's partitions
        ("delete_item", 3),  # the second thread's item (after its partitions are gone)
        ("delete_item", 7),  # the parent's own item, last of all
    ],
)
def test_a_delete_that_fails_half_way_is_finished_by_the_next(api: Api, faults: Faults, operation: str, n: int) -> None:
    cid, tids = a_conversation_with_threads(api)
    faults.inject(operation, error("InternalServerError"), when=nth(n))
    failed = api.call("conversations_delete", path={"conversation_id": cid})
    assert failed.status == 500, failed.body
    # half-way: the parent and every thread already answer 404, and no list shows them
    for target in (cid, *tids):
        assert api.call("conversations_get", path={"conversation_id": target}).status == 404
        assert api.call("messages_create", {"content": "x"}, path={"conversation_id": target}).status == 404
    assert api.call("conversations_list", query={"include_threads": "true", "status": "all"}).body["data"] == []
    assert items_of(cid, *tids) != []  # something is left for the retry
    retried = api.call("conversations_delete", path={"conversation_id": cid})
    assert (retried.status, retried.body["deleted"]) == (200, True)
    all_gone(api, cid, tids)
    assert api.call("conversations_delete", path={"conversation_id": cid}).status == 404


def test_no_thread_lands_in_a_conversation_being_deleted(api: Api, faults: Faults) -> None:
    cid = conversation(api)
    anchor = send(api, cid, "hello")["id"]
    faults.inject("batch_write_item", error("InternalServerError"))
    assert api.call("conversations_delete", path={"conversation_id": cid}).status == 500
    refused = api.call("threads_create", {"parent_message_id": anchor}, path={"conversation_id": cid})
    assert (refused.status, refused.body["error"]["code"]) == (404, "conversation_not_found")
    assert api.call("conversations_delete", path={"conversation_id": cid}).status == 200
    assert items_of(cid) == []


# ---- events ---------------------------------------------------------------------------------------


def test_a_thread_is_created_and_deleted_as_a_conversation_with_a_parent(api: Api, pipeline: Pipeline) -> None:
    from tests.handlers.test_events import published

    cid = conversation(api)
    anchor = send(api, cid, "hello")["id"]
    tid = thread(api, cid, anchor)["id"]
    send(api, tid, "in the thread")
    api.call("conversations_delete", path={"conversation_id": cid})
    pipeline.drain()
    events = [e["detail"] for e in published()]
    seen = [(e["type"], e["conversation_id"]) for e in events]
    assert seen.count(("chat.conversation_created", tid)) == 1
    assert seen.count(("chat.message_sent", tid)) == 1
    assert seen.count(("chat.conversation_deleted", tid)) == 1
    assert seen.count(("chat.conversation_deleted", cid)) == 1
    created = next(e for e in events if e["type"] == "chat.conversation_created" and e["conversation_id"] == tid)
    assert (created["data"]["parent_id"], created["data"]["parent_message_id"], created["sequence"]) == (
        cid,
        anchor,
        1,
    )
    parent_created = next(e for e in events if e["type"] == "chat.conversation_created" and e["conversation_id"] == cid)
    assert parent_created["data"]["parent_id"] is None
    deleted = next(e for e in events if e["type"] == "chat.conversation_deleted" and e["conversation_id"] == tid)
    assert deleted["data"]["parent_id"] == cid
    assert len(events) == len({e["id"] for e in events})  # the delete's mark and purge add none
