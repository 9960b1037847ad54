"""Stored conversations through their handlers, on moto."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from parley.domain.principal import Principal
from parley.services import registry
from tests.handlers import upstream
from tests.handlers.api import Api

OWNER = Principal("org_a", "proj_a", "key_a", ("*",))
STRANGER = Principal("org_b", "proj_b", "key_b", ("*",))


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def new(api: Api, **fields: Any) -> dict[str, Any]:
    reply = api.call("conversations_create", {"title": "Billing", **fields})
    assert reply.status == 201, reply.body
    return reply.body  # type: ignore[no-any-return]


def send(api: Api, conversation_id: str, content: str, **fields: Any) -> Any:
    return api.call("messages_create", {"content": content, **fields}, path={"conversation_id": conversation_id})


def test_create_get_update_with_metadata_and_context(api: Api) -> None:
    created = new(
        api,
        user_id="user_123",
        metadata={"page": "/billing"},
        context={"strategy": "sliding_window", "max_tokens": 8192},
        system_prompt="Be brief.",
    )
    assert created["id"].startswith("conv_")
    assert (created["status"], created["is_archived"], created["message_count"]) == ("active", False, 0)
    assert created["context"]["max_tokens"] == 8192
    assert "sessions" not in created
    got = api.call("conversations_get", path={"conversation_id": created["id"]}).body
    assert got == created
    updated = api.call(
        "conversations_update",
        {"title": "Double charge", "metadata": {"priority": "high"}},
        path={"conversation_id": created["id"]},
    ).body
    assert (updated["title"], updated["metadata"], updated["user_id"]) == (
        "Double charge",
        {"priority": "high"},
        "user_123",
    )
    assert updated["updated_at"] >= created["updated_at"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"metadata": {"x": "y" * 9000}}, "metadata"),
        ({"user_id": "a#b"}, "user_id"),
        ({"context": {"strategy": "psychic"}}, "context.strategy"),
        ({"provider_id": "aip_01JZ00000000000000000000AA"}, "provider_id"),
        ({"title": 5}, "title"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_invalid_conversations_are_400(api: Api, body: dict[str, Any], param: str) -> None:
    reply = api.call("conversations_create", body)
    assert reply.status == 400
    assert reply.body["error"]["param"] == param


@pytest.mark.parametrize(
    "metadata",
    [{"x": 1e300}, {"x": 10**40}, {"x": 1e-200}, {"": 1}, {"x": [{"": True}]}],
    ids=["huge", "40-digits", "tiny", "empty-key", "nested-empty-key"],
)
def test_metadata_dynamodb_cannot_store_is_400_and_the_conversation_stays_usable(
    api: Api, metadata: dict[str, Any]
) -> None:
    # schemathesis found these answered 500: 1e300 failed in the item codec; an empty map key was
    # stored, and then every read of the conversation failed
    assert api.call("conversations_create", {"metadata": metadata}).body["error"]["param"] == "metadata"
    conversation = new(api, metadata={"ok": 1.5, "big": 2e100})
    path = {"conversation_id": conversation["id"]}
    patched = api.call("conversations_update", {"metadata": metadata}, path=path)
    assert (patched.status, patched.body["error"]["param"]) == (400, "metadata")
    assert api.call("conversations_archive", path=path).status == 200
    assert api.call("conversations_get", path=path).body["metadata"] == {"ok": 1.5, "big": 2e100}


def test_send_stores_the_pair_and_returns_the_reply(api: Api) -> None:
    conversation = new(api)
    reply = send(api, conversation["id"], "Why was I charged twice?")
    assert reply.status == 200, reply.body
    message = reply.body
    assert (message["role"], message["content"], message["status"], message["seq"]) == (
        "assistant",
        "Why was I charged twice?",
        "completed",
        2,
    )
    assert message["usage"]["total_tokens"] > 0
    assert message["cost"] == {"amount_usd": 0.0, "currency": "usd"}
    history = api.call("messages_list", path={"conversation_id": conversation["id"]}, query={"order": "asc"}).body
    assert [(m["seq"], m["role"]) for m in history["data"]] == [(1, "user"), (2, "assistant")]
    after = api.call("conversations_get", path={"conversation_id": conversation["id"]}).body
    assert after["message_count"] == 2


def test_the_model_sees_the_system_prompt_and_the_history(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    original = registry.EchoProvider.complete

    def spy(self: Any, request: Any) -> Any:
        seen.append([(m.role, m.text()) for m in request.messages])
        return original(self, request)

    monkeypatch.setattr(registry.EchoProvider, "complete", spy)
    conversation = new(api, system_prompt="You are a billing agent.")
    send(api, conversation["id"], "first")
    send(api, conversation["id"], "second")
    assert seen[-1] == [
        ("system", "You are a billing agent."),
        ("user", "first"),
        ("assistant", "first"),
        ("user", "second"),
    ]


def test_streamed_reply_events_and_stored_result(api: Api) -> None:
    conversation = new(api)
    reply = send(api, conversation["id"], "stream me please", stream=True)
    assert reply.status == 200
    events = [json.loads(line[6:]) for line in reply.body.splitlines() if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["start", "text", "text", "text", "done"]
    start, done = events[0], events[-1]
    assert start["conversation_id"] == conversation["id"]
    assert "".join(e["text"] for e in events if e["type"] == "text") == "stream me please"
    assert done["message_id"] == start["message_id"]
    assert done["token_count"] == done["usage"]["total_tokens"]
    stored = api.call("messages_list", path={"conversation_id": conversation["id"]}).body["data"]
    assert stored[0]["id"] == start["message_id"]
    assert (stored[0]["status"], stored[0]["content"]) == ("completed", "stream me please")
    assert stored[1]["id"] == start["user_message_id"]


def test_archive_refuses_messages_keeps_history_and_unarchive_resumes(api: Api) -> None:
    conversation = new(api)
    send(api, conversation["id"], "before")
    archived = api.call("conversations_archive", path={"conversation_id": conversation["id"]}).body
    assert (archived["status"], archived["is_archived"]) == ("archived", True)
    refused = send(api, conversation["id"], "during")
    assert refused.status == 409
    assert refused.body["error"]["code"] == "conversation_archived"
    assert refused.body["error"]["type"] == "conflict_error"
    history = api.call("messages_list", path={"conversation_id": conversation["id"]}).body["data"]
    assert len(history) == 2
    assert api.call("conversations_unarchive", path={"conversation_id": conversation["id"]}).body["status"] == "active"
    assert send(api, conversation["id"], "after").status == 200


def test_delete_removes_everything_and_every_route_answers_404(api: Api) -> None:
    conversation = new(api)
    cid = conversation["id"]
    send(api, cid, "hello")
    api.call("sessions_create", {"model": "echo"}, path={"conversation_id": cid})
    deleted = api.call("conversations_delete", path={"conversation_id": cid})
    assert deleted.body == {"id": cid, "object": "conversation", "deleted": True}
    calls = [
        ("conversations_get", None),
        ("conversations_update", {"title": "x"}),
        ("conversations_delete", None),
        ("conversations_archive", None),
        ("conversations_unarchive", None),
        ("messages_create", {"content": "x"}),
        ("messages_list", None),
        ("sessions_create", {"model": "echo"}),
        ("sessions_list", None),
    ]
    for function, body in calls:
        reply = api.call(function, body, path={"conversation_id": cid})
        assert reply.status == 404, function
        assert reply.body["error"]["type"] == "not_found_error"
    from parley.aws import clients

    for table in ("parley-messages", "parley-conversations"):
        left = clients().dynamodb.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"proj_a#{cid}"}},
        )["Items"]
        assert left == []


def test_another_projects_conversation_is_404(api: Api) -> None:
    conversation = new(api)
    for function, body in [
        ("conversations_get", None),
        ("messages_create", {"content": "x"}),
        ("messages_list", None),
        ("conversations_delete", None),
    ]:
        assert api.call(function, body, path={"conversation_id": conversation["id"]}, principal=STRANGER).status == 404
    assert api.call("conversations_get", path={"conversation_id": "conv_bogus"}).status == 404


def test_list_filters_by_user_and_status_newest_activity_first_with_cursor(api: Api) -> None:
    a = new(api, user_id="u1", title="a")
    b = new(api, user_id="u1", title="b")
    c = new(api, user_id="u2", title="c")
    send(api, a["id"], "bump")  # a is now the most recently active
    api.call("conversations_archive", path={"conversation_id": b["id"]})

    def titles(**query: str) -> list[str]:
        return [x["title"] for x in api.call("conversations_list", query=query).body["data"]]

    assert titles() == ["a", "c"]
    assert titles(user_id="u1") == ["a"]
    assert titles(user_id="u1", status="archived") == ["b"]
    assert titles(status="all") == ["b", "a", "c"]
    first = api.call("conversations_list", query={"status": "all", "limit": "2"}).body
    assert (len(first["data"]), first["has_more"]) == (2, True)
    rest = api.call("conversations_list", query={"status": "all", "limit": "2", "cursor": first["next_cursor"]}).body
    assert [x["id"] for x in first["data"] + rest["data"]] == [b["id"], a["id"], c["id"]]
    assert rest["has_more"] is False
    wrong = api.call("conversations_list", query={"status": "active", "cursor": first["next_cursor"]})
    assert wrong.body["error"]["param"] == "cursor"
    assert api.call("conversations_list", query={"status": "deleted"}).status == 400
    assert api.call("conversations_list", query={"org_id": "org_b"}).body["error"]["param"] == "org_id"
    assert api.call("conversations_list", query={"org_id": "org_a"}).status == 200


def test_history_pages_by_cursor_and_offset_in_both_orders(api: Api) -> None:
    conversation = new(api)
    cid = conversation["id"]
    for i in range(5):
        send(api, cid, f"m{i}")  # seqs 1..10

    def seqs(**query: str) -> tuple[list[int], Any]:
        body = api.call("messages_list", path={"conversation_id": cid}, query=query).body
        return [m["seq"] for m in body["data"]], body

    assert seqs(limit="3")[0] == [10, 9, 8]  # newest first by default
    assert seqs(limit="3", order="asc")[0] == [1, 2, 3]
    assert seqs(limit="3", offset="3", order="asc")[0] == [4, 5, 6]
    assert seqs(limit="4", offset="8", order="asc")[0] == [9, 10]
    assert seqs(limit="3", offset="8")[0] == [2, 1]
    assert seqs(limit="3", offset="10")[0] == []
    walked, cursor = [], None
    while True:
        got, body = seqs(limit="4", order="desc", **({"cursor": cursor} if cursor else {}))
        walked += got
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    assert walked == list(range(10, 0, -1))
    _, first = seqs(limit="2", order="asc")
    mixed = api.call(
        "messages_list", path={"conversation_id": cid}, query={"cursor": first["next_cursor"], "order": "desc"}
    )
    assert mixed.body["error"]["param"] == "cursor"
    both = api.call(
        "messages_list", path={"conversation_id": cid}, query={"cursor": first["next_cursor"], "offset": "1"}
    )
    assert both.status == 400


def test_sessions_bind_a_model_and_answer_messages(api: Api) -> None:
    conversation = new(api)
    cid = conversation["id"]
    session = api.call("sessions_create", {"model_id": "echo"}, path={"conversation_id": cid})
    assert session.status == 201
    assert (session.body["model"], session.body["status"]) == ("echo", "active")
    reply = send(api, cid, "via session", session_id=session.body["id"])
    assert (reply.body["session_id"], reply.body["model"]) == (session.body["id"], "echo")
    listed = api.call("sessions_list", path={"conversation_id": cid}).body["data"]
    assert [s["id"] for s in listed] == [session.body["id"]]
    inline = api.call("conversations_get", path={"conversation_id": cid}, query={"include": "sessions"}).body
    assert [s["id"] for s in inline["sessions"]] == [session.body["id"]]
    unknown = send(api, cid, "x", session_id="ses_01JZ00000000000000000000AA")
    assert unknown.body["error"]["param"] == "session_id"


def broken_provider(api: Api, monkeypatch: pytest.MonkeyPatch, response: httpx.Response | Exception) -> str:
    upstream.install(monkeypatch, [response] * 10)
    monkeypatch.setattr("parley.providers.resilient.RetryPolicy.base_delay", 0.0)
    return str(
        api.call(
            "providers_create", {"type": "openai", "name": "oa", "api_key": "k", "default_model": "gpt-4o-mini"}
        ).body["id"]
    )


@pytest.mark.parametrize(
    ("failure", "status", "error_type"),
    [
        (httpx.Response(500, json={"error": {"message": "boom"}}), 502, "provider_error"),
        (httpx.ReadTimeout("slow"), 504, "provider_timeout"),
    ],
)
def test_a_failed_model_call_leaves_the_pair_with_an_error_reply(
    api: Api, monkeypatch: pytest.MonkeyPatch, failure: Any, status: int, error_type: str
) -> None:
    provider_id = broken_provider(api, monkeypatch, failure)
    conversation = new(api, provider_id=provider_id)
    for stream in (False, True):
        reply = send(api, conversation["id"], "hello?", stream=stream)
        assert reply.status == status
        assert reply.body["error"]["type"] == error_type
    history = api.call("messages_list", path={"conversation_id": conversation["id"]}, query={"order": "asc"}).body
    assert [(m["seq"], m["role"], m["status"]) for m in history["data"]] == [
        (1, "user", "completed"),
        (2, "assistant", "error"),
        (3, "user", "completed"),
        (4, "assistant", "error"),
    ]
    assert history["data"][1]["error"]["type"] == error_type


def test_a_stream_dropped_mid_way_keeps_the_partial_reply_as_incomplete(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider_id = broken_provider(api, monkeypatch, upstream.chunk_then_drop("Partial answ"))
    conversation = new(api, provider_id=provider_id)
    reply = send(api, conversation["id"], "tell me", stream=True)
    events = [json.loads(line[6:]) for line in reply.body.splitlines() if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["start", "text", "error"]
    assert events[-1]["error"]["type"] == "provider_error"
    stored = api.call("messages_list", path={"conversation_id": conversation["id"]}).body["data"][0]
    assert (stored["status"], stored["content"]) == ("incomplete", "Partial answ")


def test_a_sender_that_loses_the_race_retries_and_nothing_is_lost(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another send commits between this send's read and its write: the conditional write fails,
    the send re-reads and takes the next two sequence numbers."""
    from parley.storage.conversations import ConversationStore

    conversation = new(api)
    cid = conversation["id"]
    original = ConversationStore.append_pair
    interfered: list[bool] = []

    def racing(self: ConversationStore, current: Any, user: Any, reply: Any, changes: Any, *rest: Any) -> None:
        if not interfered:
            interfered.append(True)
            assert send(api, cid, "the other sender").status == 200  # commits seqs 1 and 2 first
        original(self, current, user, reply, changes, *rest)

    monkeypatch.setattr(ConversationStore, "append_pair", racing)
    assert send(api, cid, "the slower sender").status == 200
    history = api.call("messages_list", path={"conversation_id": cid}, query={"order": "asc"}).body["data"]
    assert [(m["seq"], m["content"]) for m in history] == [
        (1, "the other sender"),
        (2, "the other sender"),
        (3, "the slower sender"),
        (4, "the slower sender"),
    ]


def test_a_reply_left_pending_by_a_dead_invocation_shows_as_incomplete(api: Api) -> None:
    from datetime import UTC, datetime, timedelta

    from parley.domain.conversations import MessageRecord
    from parley.storage.conversations import message_from_item

    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    item = {
        "id": "msg_1",
        "conversation_id": "conv_1",
        "seq": 2,
        "role": "assistant",
        "content": "",
        "status": "pending",
    }
    fresh = message_from_item(MessageRecord(**item, created_at=(now - timedelta(minutes=2)).isoformat()), now)
    stale = message_from_item(MessageRecord(**item, created_at=(now - timedelta(minutes=20)).isoformat()), now)
    assert fresh.status == "pending"
    assert (stale.status, stale.error["code"]) == ("incomplete", "interrupted")  # type: ignore[index]
