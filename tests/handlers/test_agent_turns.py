"""Agents answering conversations through the handlers, on moto: settings from the agent (latest
or pinned version), client tools (the reply stops, the caller posts results), http tools (Parley
calls a signed endpoint: an httpx mock transport here), every step stored, the step limit."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from parley import egress
from parley.domain.principal import Principal
from parley.services import tools
from tests.handlers.api import Api

OWNER = Principal("org_a", "proj_a", "key_a", ("*",))
STRANGER = Principal("org_b", "proj_b", "key_b", ("*",))
ORDER = {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


class Endpoint:
    """An http tool's endpoint behind an httpx mock transport: records requests, answers `answer`."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answer: Callable[[httpx.Request], httpx.Response] = lambda r: httpx.Response(
            200, json={"output": "order 42 ships tomorrow"}
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """The tool's host resolves to a public address (as its URL is checked at create); calls go
    to the mock transport."""
    served = Endpoint()
    egress.set_resolver(lambda host, port: ["93.184.216.34"])
    tools.set_runner(tools.Runner(transport=httpx.MockTransport(served)))
    yield served
    tools.set_runner(None)
    egress.set_resolver(None)


def agent(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"name": "support_agent", "model": "echo", "system_prompt": "You are support.", **fields}
    reply = api.call("agents_create", body)
    assert reply.status == 201, reply.body
    return reply.body  # type: ignore[no-any-return]


def conversation(api: Api, **fields: Any) -> dict[str, Any]:
    reply = api.call("conversations_create", {"title": "Help", **fields})
    assert reply.status == 201, reply.body
    return reply.body  # type: ignore[no-any-return]


def send(api: Api, conversation_id: str, body: dict[str, Any], **kwargs: Any) -> Any:
    return api.call("messages_create", body, path={"conversation_id": conversation_id}, **kwargs)


def history(api: Api, conversation_id: str) -> list[dict[str, Any]]:
    reply = api.call("messages_list", path={"conversation_id": conversation_id}, query={"limit": "100", "order": "asc"})
    assert reply.status == 200, reply.body
    return reply.body["data"]  # type: ignore[no-any-return]


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((lines["event"], json.loads(lines["data"])))
    return events


CLIENT_TOOL = {"type": "client", "name": "confirm", "description": "Ask the user to confirm", "parameters": ORDER}
HTTP_TOOL = {"type": "http", "name": "lookup_order", "url": "https://tools.example.com/orders", "parameters": ORDER}


def test_a_conversation_with_an_agent_takes_its_settings_and_records_who_answered(api: Api) -> None:
    made = agent(api)
    chat = conversation(api, agent="support_agent")
    assert chat["agent_id"] == made["id"] and "agent_version" not in chat
    reply = send(api, chat["id"], {"content": "hello"})
    assert reply.status == 200, reply.body
    assert (reply.body["agent_id"], reply.body["agent_version"], reply.body["model"]) == (made["id"], 1, "echo")
    context = api.call("context_get", path={"conversation_id": chat["id"]}).body
    assert context["model"] == "echo"


def test_updating_the_agent_moves_unpinned_conversations_and_not_pinned_ones(api: Api) -> None:
    made = agent(api)
    follows = conversation(api, agent=made["id"])
    pinned = conversation(api, agent="support_agent", agent_version=1)
    assert pinned["agent_version"] == 1
    updated = api.call("agents_update", {"system_prompt": "You are sales."}, path={"agent_id": made["id"]})
    assert updated.status == 200 and updated.body["version"] == 2, updated.body
    assert send(api, follows["id"], {"content": "hi"}).body["agent_version"] == 2
    assert send(api, pinned["id"], {"content": "hi"}).body["agent_version"] == 1


def test_an_unknown_agent_is_404_and_a_deleted_one_stops_its_conversations_with_409(api: Api) -> None:
    assert conversation_status(api, agent="nobody") == (404, "agent_not_found")
    made = agent(api)
    chat = conversation(api, agent=made["id"])
    assert api.call("agents_delete", path={"agent_id": made["id"]}).status in (200, 204)
    refused = send(api, chat["id"], {"content": "hi"})
    assert (refused.status, refused.body["error"]["code"]) == (409, "agent_not_found")
    # the conversation can be pointed at another agent and goes on
    other = agent(api, name="other_agent")
    moved = api.call("conversations_update", {"agent": "other_agent"}, path={"conversation_id": chat["id"]})
    assert moved.status == 200 and moved.body["agent_id"] == other["id"]
    assert send(api, chat["id"], {"content": "hi"}).status == 200
    # another project cannot name this project's agent
    stranger = api.call("conversations_create", {"agent": "other_agent"}, principal=STRANGER)
    assert (stranger.status, stranger.body["error"]["code"]) == (404, "agent_not_found")


def conversation_status(api: Api, **fields: Any) -> tuple[int, str]:
    reply = api.call("conversations_create", fields)
    return reply.status, reply.body["error"]["code"]


def test_a_client_tool_stops_the_reply_and_posted_results_continue_the_same_turn(api: Api) -> None:
    made = agent(api, tools=[CLIENT_TOOL])
    chat = conversation(api, agent="support_agent")
    asked = send(api, chat["id"], {"content": "cancel my order"})
    assert asked.status == 200, asked.body
    call = asked.body["tool_calls"][0]
    assert call["function"]["name"] == "confirm"
    assert json.loads(call["function"]["arguments"]) == {"input": "cancel my order"}
    # while the call waits, a new message is refused, as are results for other calls
    waiting = send(api, chat["id"], {"content": "hello?"})
    assert (waiting.status, waiting.body["error"]["code"]) == (409, "tool_results_required")
    assert call["id"] in waiting.body["error"]["message"]
    wrong = send(api, chat["id"], {"tool_results": [{"tool_call_id": "call_other", "output": "yes"}]})
    assert (wrong.status, wrong.body["error"]["code"]) == (400, "tool_results_mismatch")
    both = send(api, chat["id"], {"content": "x", "tool_results": [{"tool_call_id": call["id"], "output": "y"}]})
    assert both.status == 400
    answered = send(api, chat["id"], {"tool_results": [{"tool_call_id": call["id"], "output": "confirmed by user"}]})
    assert answered.status == 200, answered.body
    assert (answered.body["role"], answered.body["content"]) == ("assistant", "confirmed by user")
    assert answered.body["agent_id"] == made["id"]
    again = send(api, chat["id"], {"tool_results": [{"tool_call_id": call["id"], "output": "twice"}]})
    assert (again.status, again.body["error"]["code"]) == (409, "no_tool_calls_pending")
    steps = [(m["role"], m["content"], m.get("tool_call_id")) for m in history(api, chat["id"])]
    assert steps == [
        ("user", "cancel my order", None),
        ("assistant", "", None),
        ("tool", "confirmed by user", call["id"]),
        ("assistant", "confirmed by user", None),
    ]
    # the next message is an ordinary turn again
    assert send(api, chat["id"], {"content": "thanks"}).status == 200


def test_tool_results_with_an_idempotency_key_are_stored_once(api: Api) -> None:
    agent(api, tools=[CLIENT_TOOL])
    chat = conversation(api, agent="support_agent")
    call = send(api, chat["id"], {"content": "cancel"}).body["tool_calls"][0]
    body = {"tool_results": [{"tool_call_id": call["id"], "output": "ok"}]}
    first = send(api, chat["id"], body, headers={"Idempotency-Key": "results-1"})
    second = send(api, chat["id"], body, headers={"Idempotency-Key": "results-1"})
    assert first.status == 200 and second.body["id"] == first.body["id"], (first.body, second.body)
    assert [m["role"] for m in history(api, chat["id"])] == ["user", "assistant", "tool", "assistant"]


def test_an_http_tool_is_called_signed_and_its_result_answers_in_one_stream(api: Api, endpoint: Endpoint) -> None:
    made = agent(api, tools=[HTTP_TOOL])
    chat = conversation(api, agent="support_agent")
    reply = send(api, chat["id"], {"content": "where is order 42?", "stream": True})
    assert reply.status == 200, reply.body
    events = sse(reply.body)
    kinds = [kind for kind, _ in events]
    assert kinds[:3] == ["start", "tool_call", "tool_result"], kinds
    assert kinds[3] == "start" and kinds[-1] == "done" and "text" in kinds, kinds
    result = events[2][1]
    assert (result["output"], result["is_error"]) == ("order 42 ships tomorrow", False)
    text = "".join(data["text"] for kind, data in events if kind == "text")
    assert text == "order 42 ships tomorrow"
    # the request the endpoint got: signed with the agent's secret, the model's arguments
    (request,) = endpoint.requests
    body = request.content.decode()
    verified = Webhook(made["signing_secret"]).verify(body, dict(request.headers))
    assert verified["tool"] == "lookup_order" and verified["arguments"] == {"input": "where is order 42?"}
    assert verified["conversation_id"] == chat["id"] and verified["agent_id"] == made["id"]
    # done carries the whole turn's usage: both model calls
    done = events[-1][1]
    stored = history(api, chat["id"])
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "assistant"]
    calls = [m["usage"]["total_tokens"] for m in stored if m["role"] == "assistant"]
    assert done["usage"]["total_tokens"] == sum(calls) and len(calls) == 2
    assert done["message_id"] == stored[-1]["id"] == events[3][1]["message_id"]


def test_http_tool_failures_are_results_the_model_reads(api: Api, endpoint: Endpoint) -> None:
    agent(api, tools=[HTTP_TOOL, {**HTTP_TOOL, "name": "big", "max_response_bytes": 10}])
    chat = conversation(api, agent="support_agent")
    endpoint.answer = lambda r: httpx.Response(500, text="down")
    failed = send(api, chat["id"], {"content": "@lookup_order 42"})
    assert failed.status == 200 and "answered 500" in failed.body["content"], failed.body
    endpoint.answer = lambda r: httpx.Response(200, text="x" * 50)
    big = send(api, chat["id"], {"content": "@big 42"})
    assert "over its limit of 10 bytes" in big.body["content"], big.body
    tool_messages = [m for m in history(api, chat["id"]) if m["role"] == "tool"]
    assert all(m["error"]["code"] == "tool_failed" for m in tool_messages), tool_messages


def test_arguments_the_schema_refuses_never_reach_the_endpoint(api: Api, endpoint: Endpoint) -> None:
    schema = {"type": "object", "properties": {"order": {"type": "integer"}}, "required": ["order"]}
    strict = {**HTTP_TOOL, "parameters": schema}
    agent(api, tools=[strict])
    chat = conversation(api, agent="support_agent")
    reply = send(api, chat["id"], {"content": "where is my order"})
    assert reply.status == 200
    assert "do not match the tool's parameters" in reply.body["content"], reply.body
    assert endpoint.requests == []


def test_the_step_limit_ends_the_turn_with_an_error_event_and_a_readable_history(api: Api, endpoint: Endpoint) -> None:
    # the endpoint's answer names the tool again, so echo calls it again: a loop the limit stops
    endpoint.answer = lambda r: httpx.Response(200, json={"output": "try @lookup_order again"})
    agent(api, tools=[HTTP_TOOL], max_tool_steps=2)
    chat = conversation(api, agent="support_agent")
    reply = send(api, chat["id"], {"content": "loop", "stream": True})
    events = sse(reply.body)
    assert events[-1][0] == "error" and events[-1][1]["error"]["code"] == "tool_step_limit", events[-1]
    assert len(endpoint.requests) == 2
    stored = history(api, chat["id"])
    roles = [m["role"] for m in stored]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"], roles
    last = stored[-1]
    assert last["status"] == "incomplete" and last["error"]["code"] == "tool_step_limit"
    assert last["tool_calls"], last
    # the conversation goes on: the unrun calls are left out of the next window
    endpoint.answer = lambda r: httpx.Response(200, json={"output": "done"})
    after = send(api, chat["id"], {"content": "plain question, no tool"})
    assert after.status == 200, after.body
    context = api.call("context_get", path={"conversation_id": chat["id"]})
    assert context.status == 200, context.body
