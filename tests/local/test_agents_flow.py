"""Issue 15's acceptance, end to end over HTTP on `make serve`: seed 001's flows in one run.

An agent with an http tool (a receiver on 127.0.0.1 that verifies Parley's signature) and a
client tool; a conversation created with the agent and its context settings; a send; a stream
with the client tool's round trip; a thread anchored to a reply, whose messages never enter the
parent's context window; a handoff to a human with an operator's reply, then resolved; a handoff
to another agent whose reply comes from its system prompt; and every webhook event received.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.handlers.webhook_receiver import Receiver
from tests.local.conftest import Server
from tests.local.models import ScriptedModel

pytestmark = pytest.mark.local
ORDER = {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}


class ToolEndpoint:
    """An http tool's endpoint on 127.0.0.1: verifies each request's Standard Webhooks signature
    (once the agent's secret is known) and answers with the order's status."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.verified: list[dict[str, Any]] = []
        self.refused = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                try:
                    assert endpoint.secret is not None
                    call = Webhook(endpoint.secret).verify(body, {k.lower(): v for k, v in self.headers.items()})
                except Exception:  # noqa: BLE001 - any failure to verify is a refusal, counted
                    endpoint.refused += 1
                    self._answer(401, {"error": "bad signature"})
                    return
                endpoint.verified.append(call)
                self._answer(200, {"output": f"order status: shipped ({call['arguments']['input']})"})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/orders"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def prompt_model() -> ScriptedModel:
    """A model whose reply is its (first) system prompt: what shows which agent's prompt a call received."""
    return ScriptedModel(lambda request: next((m["content"] for m in request["messages"] if m["role"] == "system"), ""))


@pytest.fixture
def outside() -> Iterator[tuple[Receiver, ToolEndpoint, ScriptedModel]]:
    with Receiver() as receiver:
        tool, model = ToolEndpoint(), prompt_model()
        yield receiver, tool, model
        tool.close()
        model.close()


class Client:
    def __init__(self, server: Server) -> None:
        self.http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60)

    def ok(self, method: str, path: str, body: Any = None, status: int | tuple[int, ...] = (200, 201)) -> Any:
        response = self.http.request(method, path, json=body)
        wanted = (status,) if isinstance(status, int) else status
        assert response.status_code in wanted, (method, path, response.status_code, response.text)
        return response.json() if response.content else None

    def refused(self, method: str, path: str, body: Any, status: int, code: str) -> None:
        response = self.http.request(method, path, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text

    def stream(self, path: str, body: Any) -> list[tuple[str, dict[str, Any]]]:
        events: list[tuple[str, dict[str, Any]]] = []
        with self.http.stream("POST", path, json={**body, "stream": True}) as response:
            assert response.status_code == 200, response.read()
            kind = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line[len("event: ") :]
                elif line.startswith("data: ") and kind is not None:
                    events.append((kind, json.loads(line[len("data: ") :])))
        return events


def test_seed_001_agents_tools_threads_and_handoffs_end_to_end(
    server: Server, outside: tuple[Receiver, ToolEndpoint, ScriptedModel]
) -> None:
    receiver, tool, model = outside
    api = Client(server)
    webhook = api.ok("POST", "/v1/webhooks", {"url": receiver.url, "event_types": ["chat.*"]})
    try:
        _run(api, receiver, tool, model)
    finally:
        api.ok("DELETE", f"/v1/webhooks/{webhook['id']}")


def _run(api: Client, receiver: Receiver, tool: ToolEndpoint, model: ScriptedModel) -> None:
    # --- agents: support (echo, an http tool and a client tool) and sales (a model that answers
    # with its system prompt)
    tools = [
        {"type": "http", "name": "lookup_order", "url": tool.url, "parameters": ORDER},
        {"type": "client", "name": "confirm", "description": "Ask the user to confirm", "parameters": ORDER},
    ]
    support = api.ok(
        "POST",
        "/v1/agents",
        {"name": "support_agent", "model": "echo", "system_prompt": "You are support.", "tools": tools},
    )
    tool.secret = support["signing_secret"]
    provider = api.ok(
        "POST", "/v1/providers", {"type": "openai", "name": "prompt", "base_url": model.base_url, "default_model": "m"}
    )
    sales = api.ok(
        "POST",
        "/v1/agents",
        {"name": "sales_agent", "provider_id": provider["id"], "model": "m", "system_prompt": "You are sales."},
    )

    # --- a conversation with the agent and its context settings
    chat = api.ok(
        "POST",
        "/v1/conversations",
        {"title": "Order help", "user_id": "user_1", "agent": "support_agent", "context": {"strategy": "full"}},
    )
    cid = chat["id"]
    assert chat["agent_id"] == support["id"] and chat["context"]["strategy"] == "full"

    # --- a send: echo calls the http tool (the first), the signed endpoint answers, echo relays it
    sent = api.ok("POST", f"/v1/conversations/{cid}/messages", {"content": "where is order 42?"})
    assert sent["content"] == "order status: shipped (where is order 42?)", sent
    assert (sent["agent_id"], sent["agent_version"]) == (support["id"], 1)
    assert tool.refused == 0 and tool.verified[-1]["conversation_id"] == cid

    # --- a stream with the client tool's round trip
    events = api.stream(f"/v1/conversations/{cid}/messages", {"content": "@confirm cancel order 42"})
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "start" and "tool_call" in kinds and kinds[-1] == "done", kinds
    call = next(data for kind, data in events if kind == "tool_call")
    assert call["name"] == "confirm", call
    answer = api.ok(
        "POST",
        f"/v1/conversations/{cid}/messages",
        {"tool_results": [{"tool_call_id": call["id"], "output": "the user confirmed"}], "stream": False},
    )
    assert answer["content"] == "the user confirmed", answer

    # --- a thread anchored to that reply: its own messages, never in the parent's context
    before = api.ok("GET", f"/v1/conversations/{cid}/context")
    thread = api.ok(
        "POST", f"/v1/conversations/{cid}/threads", {"parent_message_id": answer["id"], "title": "About the refund"}
    )
    tid = thread["id"]
    assert tid.startswith("thr_") and thread["parent_message_id"] == answer["id"]
    in_thread = api.ok("POST", f"/v1/conversations/{tid}/messages", {"content": "@confirm refund to my card?"})
    assert in_thread["tool_calls"], in_thread  # the thread shares the parent's agent and tools
    api.ok(
        "POST",
        f"/v1/conversations/{tid}/messages",
        {"tool_results": [{"tool_call_id": in_thread["tool_calls"][0]["id"], "output": "refund queued"}]},
    )
    after = api.ok("GET", f"/v1/conversations/{cid}/context")
    assert (after["context_messages"], after["window"]) == (before["context_messages"], before["window"]), after
    parent_history = api.ok("GET", f"/v1/conversations/{cid}/messages?order=asc&limit=100")["data"]
    assert not any("refund" in m["content"] for m in parent_history)
    listed = api.ok("GET", f"/v1/conversations/{cid}/threads")["data"]
    assert [(t["id"], t["message_count"]) for t in listed] == [(tid, 4)], listed
    thread_context = api.ok("GET", f"/v1/conversations/{tid}/context")
    assert thread_context["context_messages"] >= 4, thread_context  # the anchor and the thread's own

    # --- handoff to a human: sends are stored without a model call, an operator replies, resolve
    handoff = api.ok("POST", f"/v1/conversations/{cid}/handoff", {"to": "human", "reason": "refund over limit"})
    assert handoff["status"] == "pending"
    api.refused("POST", f"/v1/conversations/{cid}/handoff", {"to": "human", "reason": "again"}, 409, "handoff_pending")
    queue = api.ok("GET", "/v1/handoffs?status=pending")["data"]
    assert handoff["id"] in [h["id"] for h in queue]
    waiting = api.ok("POST", f"/v1/conversations/{cid}/messages", {"content": "is anyone there?"}, status=202)
    assert waiting["object"] == "held_send" and waiting["message"]["content"] == "is anyone there?", waiting
    operator = {
        "role": "assistant",
        "content": "Hi, I'm Dana; refund approved.",
        "author": {"type": "human", "id": "op_1", "name": "Dana"},
    }
    posted = api.ok("POST", f"/v1/conversations/{cid}/messages", operator)
    assert posted["author"]["name"] == "Dana"
    api.ok("POST", f"/v1/conversations/{cid}/handoff/resolve", {"resolution": "refund approved"})
    api.refused("POST", f"/v1/conversations/{cid}/handoff/resolve", {"resolution": "x"}, 409, "no_pending_handoff")
    back = api.ok("POST", f"/v1/conversations/{cid}/messages", {"content": "thanks!"})
    assert back["agent_id"] == support["id"] and back["role"] == "assistant", back

    # --- handoff to another agent: at once, resolved, and the reply comes from its prompt
    api.ok("POST", f"/v1/conversations/{cid}/handoff", {"to": "agent:sales_agent", "reason": "upsell"})
    switched = api.ok("GET", f"/v1/conversations/{cid}")
    assert (switched["agent_id"], switched["status"]) == (sales["id"], "active"), switched
    sold = api.ok("POST", f"/v1/conversations/{cid}/messages", {"content": "any deals?"})
    assert (sold["content"], sold["agent_id"]) == ("You are sales.", sales["id"]), sold
    handoffs = api.ok("GET", f"/v1/conversations/{cid}/handoffs")["data"]
    assert [h["status"] for h in handoffs] == ["resolved", "resolved"], handoffs

    # --- every event arrives at the webhook
    wanted = Counter(
        {
            "chat.conversation_created": 1,
            "chat.message_sent": 5,
            "chat.handoff_requested": 2,
            "chat.handoff_resolved": 2,
        }
    )
    deadline = time.monotonic() + 90
    seen: Counter[str] = Counter()
    while time.monotonic() < deadline:
        seen = Counter(
            e["type"] for e in (json.loads(r.body) for r in list(receiver.requests)) if e.get("conversation_id") == cid
        )
        if all(seen[k] >= n for k, n in wanted.items()) and seen["chat.response_completed"] >= 6:
            break
        time.sleep(0.3)
    assert all(seen[k] >= n for k, n in wanted.items()), seen
    assert seen["chat.response_completed"] >= 6, seen
    for request in list(receiver.requests):
        assert json.loads(request.body)["type"]  # each a signed event (the webhook tests verify signatures)
