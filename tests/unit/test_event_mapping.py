"""parley.events.mapping on changes no API route makes yet (handoff, which the agents issue
builds on) and on changes that mean no event."""

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


def test_a_handoff_and_its_resolution_are_events_with_their_target() -> None:
    before = conversation()
    handed = conversation(
        status="handed_off", version=4, handoff={"target": "agent", "agent_id": "agt_1", "reason": "billing"}
    )
    (requested,) = events_of(modify(before, handed))
    assert requested.type == "chat.handoff_requested" and requested.sequence == 4
    assert requested.model_dump()["data"]["target"] == "agent"
    (resolved,) = events_of(modify(handed, conversation(version=5), "r2"))
    assert resolved.type == "chat.handoff_resolved" and resolved.sequence == 5


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
