"""Conversations over real HTTP against the local server."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.local.conftest import Server

pytestmark = pytest.mark.local


def client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60)


def test_twenty_concurrent_sends_give_forty_dense_messages_each_reply_after_its_question(server: Server) -> None:
    with client(server) as http:
        conversation = http.post("/v1/conversations", json={"title": "load"}).json()
        cid = conversation["id"]

        def send(i: int) -> int:
            body = {"content": f"question {i}", "stream": i % 2 == 0}
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60
            ) as own:
                return own.post(f"/v1/conversations/{cid}/messages", json=body).status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(send, range(20)))
        assert statuses == [200] * 20, statuses
        history = http.get(f"/v1/conversations/{cid}/messages", params={"order": "asc", "limit": 100}).json()
    messages = history["data"]
    assert [m["seq"] for m in messages] == list(range(1, 41))
    for user, reply in zip(messages[0::2], messages[1::2], strict=True):
        assert (user["role"], reply["role"]) == ("user", "assistant")
        assert reply["content"] == user["content"]  # echo: the reply answers exactly its own question
        assert reply["status"] == "completed"
    assert len({m["content"] for m in messages}) == 20


def test_conversation_stream_over_http(server: Server) -> None:
    with client(server) as http:
        cid = http.post("/v1/conversations", json={}).json()["id"]
        with http.stream("POST", f"/v1/conversations/{cid}/messages", json={"content": "a b c", "stream": True}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            names = [line[7:] for line in r.iter_lines() if line.startswith("event: ")]
        assert names == ["start", "text", "text", "text", "done"]
        archived = http.post(f"/v1/conversations/{cid}/archive").json()
        assert archived["status"] == "archived"
        refused = http.post(f"/v1/conversations/{cid}/messages", json={"content": "x", "stream": True})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "conversation_archived"
        assert http.delete(f"/v1/conversations/{cid}").json()["deleted"] is True
        assert http.get(f"/v1/conversations/{cid}/messages").status_code == 404
        assert json.loads(http.get(f"/v1/conversations/{cid}").text)["error"]["type"] == "not_found_error"


def test_every_conversation_route_over_http(server: Server) -> None:
    with client(server) as http:
        created = http.post(
            "/v1/conversations",
            params={"org_id": "org_local"},
            json={"title": "Refund policy chat", "user_id": "user_9", "metadata": {"tier": "gold"}},
        )
        assert created.status_code == 201
        cid = created.json()["id"]
        assert http.post("/v1/conversations", params={"org_id": "org_other"}, json={}).status_code == 400
        assert http.patch(f"/v1/conversations/{cid}", json={"title": "Refunds"}).json()["title"] == "Refunds"
        session = http.post(f"/v1/conversations/{cid}/sessions", json={"model_id": "echo"}).json()
        reply = http.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": "What is our refund policy?", "session_id": session["id"]},
        ).json()
        assert (reply["role"], reply["content"], reply["session_id"]) == (
            "assistant",
            "What is our refund policy?",
            session["id"],
        )
        got = http.get(f"/v1/conversations/{cid}", params={"include": "sessions,messages"}).json()
        assert [m["role"] for m in got["messages"]] == ["user", "assistant"]
        assert [s["id"] for s in got["sessions"]] == [session["id"]]
        assert got["messages_has_more"] is False
        assert http.get(f"/v1/conversations/{cid}/sessions").json()["data"][0]["model"] == "echo"
        page = http.get(f"/v1/conversations/{cid}/messages", params={"offset": 1, "limit": 1, "order": "asc"}).json()
        assert [m["seq"] for m in page["data"]] == [2]
        listed = http.get("/v1/conversations", params={"user_id": "user_9", "status": "all"}).json()
        assert [c["id"] for c in listed["data"]] == [cid]
        assert http.post(f"/v1/conversations/{cid}/archive").json()["is_archived"] is True
        assert http.post(f"/v1/conversations/{cid}/unarchive").json()["status"] == "active"
        retried = [
            http.post(
                f"/v1/conversations/{cid}/messages", json={"content": "once"}, headers={"Idempotency-Key": "walk-1"}
            )
            for _ in range(2)
        ]
        assert retried[0].json() == retried[1].json()
        assert retried[1].headers["idempotent-replayed"] == "true"
        assert http.get(f"/v1/conversations/{cid}").json()["message_count"] == 4
        assert http.get(f"/v1/conversations/{cid}", params={"include": "everything"}).status_code == 400
        assert http.delete(f"/v1/conversations/{cid}").status_code == 200
        assert http.delete(f"/v1/conversations/{cid}").status_code == 404
