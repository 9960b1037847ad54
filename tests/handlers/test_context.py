"""Context-window management through the handlers: strategies, inspection, hidden context."""

from __future__ import annotations

from typing import Any

import pytest

from parley.domain.principal import Principal
from tests.handlers.api import Api

OWNER = Principal("org_a", "proj_a", "key_a", ("*",))
LIMITED = Principal("org_a", "proj_a", "key_l", ("conversations:ListMessages",))


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def conversation(api: Api, **context: Any) -> str:
    body = {"system_prompt": "You help with billing.", "context": context} if context else {}
    return str(api.call("conversations_create", body).body["id"])


def send(api: Api, cid: str, text: str) -> Any:
    return api.call("messages_create", {"content": text}, path={"conversation_id": cid})


def test_context_numbers_equal_what_the_provider_received(api: Api, received: list[Any]) -> None:
    cid = conversation(api, strategy="sliding_window", max_tokens=300)
    for i in range(12):
        reply = send(api, cid, f"turn {i}: " + "words " * 8)
    state = api.call("context_get", path={"conversation_id": cid}).body
    last = state["last_call"]
    assert last["provider_prompt_tokens"] == reply.body["usage"]["prompt_tokens"] == last["tokens"]
    assert last["tokens"] <= 300
    assert last["messages"] == len(received[-1]) - 2  # less the system prompt and the new message
    assert state["strategy"] == "sliding_window"
    assert state["total_messages"] == 24
    assert state["token_counting"] == "estimate"
    assert state["context_tokens"] <= state["max_tokens"] == 300
    assert state["window"]["to_seq"] == 24
    assert state["dropped"]["from_seq"] == 1


def test_a_message_larger_than_the_budget_is_refused_and_nothing_is_stored(api: Api) -> None:
    cid = conversation(api, strategy="sliding_window", max_tokens=256)
    reply = send(api, cid, "word " * 400)
    assert reply.status == 400
    assert (reply.body["error"]["code"], reply.body["error"]["param"]) == ("message_too_large", "content")
    assert api.call("conversations_get", path={"conversation_id": cid}).body["message_count"] == 0


def test_full_falls_back_when_history_outgrows_the_budget(api: Api) -> None:
    cid = conversation(api, strategy="full", max_tokens=400)
    send(api, cid, "short")
    assert api.call("context_get", path={"conversation_id": cid}).body["last_call"]["fell_back"] is False
    for i in range(10):
        send(api, cid, f"longer message number {i} " + "filler " * 30)
    last = api.call("context_get", path={"conversation_id": cid}).body["last_call"]
    assert (last["applied"], last["fell_back"], last["reason"]) == ("sliding_window", True, "over_budget")


def test_summarize_stores_a_versioned_summary_of_exactly_the_dropped_range(api: Api, received: list[Any]) -> None:
    cid = conversation(api, strategy="summarize", max_tokens=400, summarize_after=4)
    for i in range(16):
        send(api, cid, f"fact {i}: the invoice number is {1000 + i} " + "detail " * 20)
    state = api.call("context_get", path={"conversation_id": cid}).body
    summary = state["summary"]
    assert summary is not None
    assert summary["version"] >= 1
    assert summary["covers"]["from_seq"] == 1
    window = state["window"]
    assert window["from_seq"] <= summary["covers"]["to_seq"] + 5  # at most summarize_after unsummarized
    prompt = received[-1]
    assert any(role == "system" and text.startswith("Summary of the earlier conversation") for role, text in prompt)


def test_hidden_context_reaches_the_model_but_not_the_default_history(api: Api, received: list[Any]) -> None:
    cid = conversation(api)
    injected = api.call("context_inject", {"content": "User is on the Enterprise plan."}, path={"conversation_id": cid})
    assert injected.status == 201
    send(api, cid, "What plan am I on?")
    assert ("system", "User is on the Enterprise plan.") in received[-1]
    history = api.call("messages_list", path={"conversation_id": cid}).body
    assert [m["role"] for m in history["data"]] == ["assistant", "user"]
    assert "hidden" not in history
    with_hidden = api.call("messages_list", path={"conversation_id": cid}, query={"include_hidden": "true"}).body
    assert [h["content"] for h in with_hidden["hidden"]] == ["User is on the Enterprise plan."]
    denied = api.call(
        "messages_list", path={"conversation_id": cid}, query={"include_hidden": "true"}, principal=LIMITED
    )
    assert denied.status == 403
    state = api.call("context_get", path={"conversation_id": cid}).body
    assert state["hidden"]["count"] == 1
    assert state["last_call"]["hidden"] == 1


def test_hidden_context_larger_than_the_budget_is_refused(api: Api) -> None:
    cid = conversation(api, strategy="sliding_window", max_tokens=256)
    reply = api.call("context_inject", {"content": "fact " * 200}, path={"conversation_id": cid})
    assert reply.status == 400
    assert reply.body["error"]["code"] == "context_too_large"
