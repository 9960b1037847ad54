"""parley.events.mapping on handoff items' changes (the handoff routes write them; the handler
tests drive them through the streams) and on changes that mean no event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from parley.events.mapping import Change, events_of

AT = datetime(2026, 12, 3, tzinfo=UTC)


def conversation(**fields: Any) -> dict[str, Any]:
    return {
        "pk": "proj_a#conv_1",
        "sk": "conversation",
        "id": "conv_1",
        "project_id": "proj_a",
        "org_id": "org_a",
        "status": "active",
        "message_count": 2,
        "next_seq": 3,
        "created_at": "2026-12-03T10:00:00.000Z",
        "updated_at": "2026-12-03T10:00:00.000Z",
        "activity": "2026-12-03T10:00:00.000Z#conv_1",
        "version": 3,
        **fields,
    }


def modify(old: dict[str, Any], new: dict[str, Any], record_id: str = "r1") -> Change:
    keys = {"pk": new["pk"], "sk": new["sk"]}
    return Change(record_id, "conversations", "MODIFY", AT, keys, old, new)


def handoff(**fields: Any) -> dict[str, Any]:
    return {
        "pk": "proj_a#conv_1",
        "sk": "handoff#hof_1",
        "handoff_queue": "proj_a#pending",
        "handoff_at": "2026-12-03T10:05:00.000Z#hof_1",
        "id": "hof_1",
        "conversation_id": "conv_1",
        "project_id": "proj_a",
        "org_id": "org_a",
        "user_id": "u1",
        "status": "pending",
        "target": "human",
        "reason": "refund over $500",
        "metadata": {"queue": "billing"},
        "requested_at": "2026-12-03T10:05:00.000Z",
        "requested_by": "key_a",
        "event_seq": 4,
        **fields,
    }


RESOLVED = {
    "status": "resolved",
    "handoff_queue": "proj_a#resolved",
    "resolved_at": "2026-12-03T10:09:00.000Z",
    "resolution": "refund approved",
    "resolved_by": {"type": "human", "id": "op_7", "name": "Dana"},
    "metadata": {"queue": "billing", "ticket": "T-1"},
    "resolved_seq": 9,
}


def change(kind: Any, old: dict[str, Any] | None, new: dict[str, Any] | None, record_id: str = "r1") -> Change:
    item = new or old or {}
    return Change(record_id, "conversations", kind, AT, {"pk": item["pk"], "sk": item["sk"]}, old, new)


def test_a_handoff_items_insert_is_requested_and_its_resolution_resolved() -> None:
    (requested,) = events_of(change("INSERT", None, handoff()))
    assert (requested.type, requested.sequence, requested.conversation_id) == ("chat.handoff_requested", 4, "conv_1")
    data = requested.model_dump()["data"]
    assert data == {
        "conversation_id": "conv_1",
        "handoff_id": "hof_1",
        "user_id": "u1",
        "target": "human",
        "agent_id": None,
        "reason": "refund over $500",
        "metadata": {"queue": "billing"},
        "requested_at": "2026-12-03T10:05:00.000Z",
        "resolved_at": None,
        "resolution": None,
        "resolved_by": None,
    }
    assert requested.created_at == "2026-12-03T10:05:00.000Z"
    (resolved,) = events_of(change("MODIFY", handoff(), handoff(**RESOLVED), "r2"))
    assert (resolved.type, resolved.sequence, resolved.created_at) == (
        "chat.handoff_resolved",
        9,
        "2026-12-03T10:09:00.000Z",
    )
    data = resolved.model_dump()["data"]
    assert (data["resolution"], data["metadata"]) == ("refund approved", {"queue": "billing", "ticket": "T-1"})
    assert data["resolved_by"] == {"type": "human", "id": "op_7", "name": "Dana"}
    assert requested.id != resolved.id


def test_a_handoff_to_an_agent_is_requested_and_resolved_from_its_one_insert() -> None:
    agent = handoff(
        **{
            **RESOLVED,
            "target": "agent",
            "agent_id": "agt_1",
            "resolution": "Switched to agent billing.",
            "resolved_by": {"type": "system"},
            "resolved_seq": 5,
        }
    )
    requested, resolved = events_of(change("INSERT", None, agent))
    assert (requested.type, requested.sequence) == ("chat.handoff_requested", 4)
    assert (resolved.type, resolved.sequence) == ("chat.handoff_resolved", 5)
    assert requested.model_dump()["data"]["agent_id"] == resolved.model_dump()["data"]["agent_id"] == "agt_1"
    assert requested.model_dump()["data"]["resolution"] is None
    assert resolved.model_dump()["data"]["resolved_by"] == {"type": "system", "id": None, "name": None}
    assert events_of(change("INSERT", None, agent)) == [requested, resolved]  # a redelivery: the same ids


def test_other_handoff_item_changes_and_the_conversations_status_moves_are_no_events() -> None:
    resolved = handoff(**RESOLVED)
    assert events_of(change("MODIFY", resolved, {**resolved, "metadata": {}})) == []
    assert events_of(change("REMOVE", handoff(), None)) == []  # a deleted conversation's purge
    before = conversation()
    handed = conversation(status="handed_off", version=4, handoff={"id": "hof_1", "target": "human"})
    assert events_of(modify(before, handed)) == []
    assert events_of(modify(handed, conversation(version=9), "r2")) == []
    switched = conversation(agent_id="agt_1", version=5)
    assert events_of(modify(before, switched)) == []


def test_a_send_moving_the_counters_is_no_conversation_event() -> None:
    before = conversation()
    after = conversation(message_count=4, next_seq=5, version=5, updated_at="2026-12-03T10:01:00.000Z")
    assert events_of(modify(before, after)) == []


def test_sessions_and_send_keys_are_no_events() -> None:
    session = {"pk": "proj_a#conv_1", "sk": "session#ses_1", "id": "ses_1"}
    assert (
        events_of(
            Change("r3", "conversations", "INSERT", AT, {"pk": session["pk"], "sk": session["sk"]}, None, session)
        )
        == []
    )


def test_the_same_change_gets_the_same_id_and_another_change_another() -> None:
    before, after = conversation(), conversation(title="New", version=4)
    (first,) = events_of(modify(before, after))
    (again,) = events_of(modify(before, after))
    (other,) = events_of(modify(before, after, "r9"))
    assert first.id == again.id != other.id
