"""Message search: the messages table's stream -> search_index -> the local engine, and
GET /v1/search/messages over it."""

from __future__ import annotations

from typing import Any

import pytest

from parley.domain.principal import Principal
from parley.runtime.pipeline import Pipeline
from tests.handlers.api import Api

OWNER = Principal(org_id="org_1", project_id="proj_a", key_id="key_a", permissions=("*",))
OTHER = Principal(org_id="org_1", project_id="proj_b", key_id="key_b", permissions=("*",))


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def conversation(api: Api, user_id: str = "u1", principal: Principal | None = None) -> str:
    reply = api.call("conversations_create", {"title": "Support", "user_id": user_id}, principal=principal)
    assert reply.status == 201, reply.body
    return str(reply.body["id"])


def send(api: Api, cid: str, content: str, principal: Principal | None = None) -> dict[str, Any]:
    reply = api.call("messages_create", {"content": content}, path={"conversation_id": cid}, principal=principal)
    assert reply.status == 200, reply.body
    return dict(reply.body)


def search(api: Api, principal: Principal | None = None, **query: str) -> dict[str, Any]:
    reply = api.call("search_messages", query=query, principal=principal)
    assert reply.status == 200, reply.body
    return dict(reply.body)


def test_a_sent_message_is_found_with_a_highlighted_snippet(api: Api, pipeline: Pipeline) -> None:
    cid = conversation(api)
    send(api, cid, "My parcel tracking number is ZX81 and it has not moved")
    pipeline.drain()
    found = search(api, q="tracking number")["data"]
    assert {h["role"] for h in found} == {"user", "assistant"}  # echo repeats it
    hit = next(h for h in found if h["role"] == "user")
    assert hit["conversation_id"] == cid and hit["user_id"] == "u1"
    assert "<mark>tracking</mark>" in hit["snippet"] and hit["score"] > 0


def test_an_exact_phrase_ranks_above_scattered_words(api: Api, pipeline: Pipeline) -> None:
    cid = conversation(api)
    send(api, cid, "The refund arrived late, and the policy on shipping was unclear to me")
    send(api, cid, "Please explain the refund policy for annual plans")
    pipeline.drain()
    found = [h for h in search(api, q="refund policy")["data"] if h["role"] == "user"]
    assert "explain the" in found[0]["snippet"]


def test_hidden_context_and_other_projects_are_never_found(api: Api, pipeline: Pipeline) -> None:
    cid = conversation(api)
    api.call("context_inject", {"content": "Secret plan: Enterprise zebra"}, path={"conversation_id": cid})
    other = conversation(api, principal=OTHER)
    send(api, other, "zebra crossing question", principal=OTHER)
    pipeline.drain()
    assert search(api, q="zebra")["data"] == []
    assert [h["conversation_id"] for h in search(api, OTHER, q="zebra")["data"]] == [other, other]


def test_filters_and_pages(api: Api, pipeline: Pipeline) -> None:
    mine, theirs = conversation(api, "u1"), conversation(api, "u2")
    for i in range(3):
        send(api, mine, f"invoice question number {i}")
    send(api, theirs, "invoice question from someone else")
    pipeline.drain()
    assert {h["user_id"] for h in search(api, q="invoice", user_id="u2")["data"]} == {"u2"}
    assert {h["conversation_id"] for h in search(api, q="invoice", conversation_id=mine)["data"]} == {mine}
    first = search(api, q="invoice", limit="3")
    assert len(first["data"]) == 3 and first["has_more"]
    seen = [h["message_id"] for h in first["data"]]
    page = first
    while page["has_more"]:
        page = search(api, q="invoice", limit="3", cursor=page["next_cursor"])
        seen += [h["message_id"] for h in page["data"]]
    assert len(seen) == len(set(seen)) == 8  # 4 sends, each with its echoed reply; no message twice


def test_a_deleted_conversation_is_forgotten(api: Api, pipeline: Pipeline) -> None:
    cid = conversation(api)
    send(api, cid, "a quokka asked about pricing")
    pipeline.drain()
    assert search(api, q="quokka")["data"]
    assert api.call("conversations_delete", path={"conversation_id": cid}).status == 200
    pipeline.drain()
    assert search(api, q="quokka")["data"] == []


def test_an_empty_query_is_a_400(api: Api) -> None:
    reply = api.call("search_messages", query={"q": "   "})
    assert reply.status == 400 and reply.body["error"]["param"] == "q"
