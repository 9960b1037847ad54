"""Tenants on one local server: `parley-admin create-key --local` issues project B's key while
the server runs, and every id of project A answers 404 to it on every route of the route table."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import httpx
import pytest

from parley.api.routing import RouteTable
from tests.local.conftest import Server, run_module

pytestmark = pytest.mark.local

# A valid body per route that takes one, so what answers is the lookup, not validation.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/providers/{provider_id}"): {"default_model": "other"},
    ("PATCH", "/v1/conversations/{conversation_id}"): {"title": "taken"},
    ("POST", "/v1/conversations/{conversation_id}/messages"): {"content": "hello"},
    ("POST", "/v1/conversations/{conversation_id}/sessions"): {"model": "echo"},
    ("POST", "/v1/conversations/{conversation_id}/context"): {"content": "hidden"},
    ("POST", "/v1/conversations/{conversation_id}/threads"): {"parent_message_id": "msg_01JZ00000000000000000000AA"},
    ("POST", "/v1/conversations/{conversation_id}/handoff"): {"to": "human"},
    ("POST", "/v1/conversations/{conversation_id}/handoff/resolve"): {"resolution": "taken"},
    ("PATCH", "/v1/chats/{chat_id}"): {"name": "taken"},
    ("POST", "/v1/chats/{chat_id}/completions"): {"messages": [{"role": "user", "content": "x"}]},
    ("POST", "/v1/chats/{chat_id}/chat/completions"): {"messages": [{"role": "user", "content": "x"}]},
    ("PATCH", "/v1/projects/{project_id}"): {"name": "taken"},
    ("PATCH", "/v1/api-keys/{key_id}"): {"name": "taken"},
    ("PATCH", "/v1/webhooks/{webhook_id}"): {"description": "taken"},
    ("PATCH", "/v1/agents/{agent_id}"): {"system_prompt": "taken"},
    ("PATCH", "/v1/indexes/{index_id}"): {"name": "taken"},
    ("POST", "/v1/indexes/{index_id}/documents"): {"id": "taken", "text": "B's text"},
    ("POST", "/v1/indexes/{index_id}/query"): {"query": "A's"},
    ("POST", "/openai/v1/conversations/{conversation_id}"): {"metadata": {"taken": "yes"}},
    ("POST", "/openai/v1/conversations/{conversation_id}/items"): {
        "items": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "taken"}]}]
    },
}


def admin_key(server: Server, org: str, project: str) -> dict[str, Any]:
    server_file = re.search(r"--server-file (\S+)", server.lines("create-key --local")[0])
    assert server_file is not None
    done = run_module(
        "parley.admin",
        "create-key",
        "--local",
        "--server-file",
        server_file.group(1),
        "--org",
        org,
        "--project",
        project,
        "--json",
    )
    assert done.returncode == 0, done.stderr
    issued: dict[str, Any] = json.loads(done.stdout)
    return issued


def test_admin_local_needs_a_running_server(tmp_path: Any) -> None:
    admin = ("parley.admin", "create-key", "--local", "--org", "o", "--project", "p")
    done = run_module(*admin, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PARLEY_DATA_DIR": str(tmp_path / "none")})
    assert done.returncode == 2
    assert "no local server is running" in done.stderr

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    stale = tmp_path / "server.json"  # left behind by a server stopped with kill -9
    stale.write_text(json.dumps({"emulation_url": "http://127.0.0.1:9", "pid": int(gone.stdout)}))
    done = run_module(*admin, "--server-file", str(stale))
    assert done.returncode == 2
    assert "is not running" in done.stderr
    assert "Traceback" not in done.stderr


def test_project_b_sees_none_of_project_a_on_any_route(server: Server, route_table: RouteTable) -> None:
    b = admin_key(server, "org_b", "proj_b")
    assert (b["org_id"], b["project_id"]) == ("org_b", "proj_b")
    a_headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.url, headers=a_headers, timeout=60) as a:
        provider = a.post("/v1/providers", json={"type": "echo", "name": "a-echo", "default_model": "echo"}).json()[
            "id"
        ]
        conversation = a.post("/v1/conversations", json={"title": "A's"}).json()["id"]
        a.post(f"/v1/conversations/{conversation}/messages", json={"content": "A's secret"})
        # a conversation of A's handed off to a human: its handoff is in A's queue only
        handed = a.post("/v1/conversations", json={"title": "A's handoff"}).json()["id"]
        handoff = a.post(f"/v1/conversations/{handed}/handoff", json={"to": "human", "reason": "A's"}).json()["id"]
        chat = a.post("/v1/chats", json={"ai_provider_id": provider, "name": "A's chat"}).json()["id"]
        document = a.post("/v1/documents", json={"name": "a.md", "content": "A's text"}).json()["id"]
        key = a.post("/v1/api-keys", json={"name": "a-key"}).json()["id"]
        project = a.get("/v1/api-keys").json()["data"][0]["project_id"]  # A's project (org_local's)
        # a local receiver nobody listens on: the test delivery fails fast, and is logged
        webhook = a.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/a", "event_types": ["*"]}).json()["id"]
        delivery = a.post(f"/v1/webhooks/{webhook}/test").json()["id"]
        agent = a.post("/v1/agents", json={"name": "a_agent", "system_prompt": "A's prompt"}).json()["id"]
        index = a.post("/v1/indexes", json={"name": "A's index", "embedding_model": "local"}).json()["id"]
        indexed = a.post(f"/v1/indexes/{index}/documents", json={"document_id": document})
        assert indexed.status_code == 201, indexed.text
        a_item = a.get(f"/v1/conversations/{conversation}/messages").json()["data"][0]["id"]
        response = a.post("/v1/responses", json={"model": "echo", "input": "A's question"})
        assert response.status_code == 200, response.text
        # a model only A's provider serves (B's project has no provider of that name)
        a_model = "a-echo%2Fecho"
        assert a.get(f"/v1/models/{a_model}").status_code == 200
    ids = {
        "provider_id": provider,
        "conversation_id": conversation,
        "chat_id": chat,
        "document_id": document,
        "key_id": key,
        "project_id": project,
        "webhook_id": webhook,
        "delivery_id": delivery,
        "agent_id": agent,
        "index_id": index,
        "model_id": a_model,
        "response_id": response.json()["id"],
        "item_id": a_item,
    }

    checked = []
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {b['secret']}"}, timeout=60) as b_http:
        for route in route_table.routes:
            if not route.params:
                continue
            missing = set(route.params) - set(ids)
            assert not missing, f"{route.method} {route.path}: the test has no project-A id for {missing}"
            path = route.path.format(**ids)
            body = BODIES.get((route.method, route.path))
            response = b_http.request(route.method, path, json=body if route.method in ("POST", "PATCH") else None)
            assert response.status_code == 404, (route.method, route.path, response.status_code, response.text)
            assert response.json()["error"]["type"] == "not_found_error"
            checked.append((route.method, route.path))
        lists = {
            "/v1/providers": provider,
            "/v1/conversations": conversation,
            "/v1/chats": chat,
            "/v1/documents": document,
            "/v1/webhooks": webhook,
            "/v1/agents": agent,
            "/v1/indexes": index,
            "/v1/handoffs?status=pending": handoff,
        }
        for path, a_id in lists.items():
            listed = b_http.get(path)
            assert listed.status_code == 200
            assert a_id not in listed.text
        # an agent's name is its project's too
        by_name = b_http.get("/v1/agents/a_agent")
        assert by_name.status_code == 404, by_name.text
        operator_reply = {"role": "assistant", "content": "x", "author": {"type": "human"}}
        for path, body in (
            (f"/v1/conversations/{handed}/handoff/resolve", {"resolution": "taken"}),
            (f"/v1/conversations/{handed}/messages", operator_reply),
            (f"/v1/conversations/{handed}/handoffs", None),
        ):
            refused = b_http.request("POST" if body else "GET", path, json=body)
            assert refused.status_code == 404, (path, refused.text)
    assert len(checked) >= 20
    # B's deletes changed nothing of A's
    with httpx.Client(base_url=server.url, headers=a_headers, timeout=60) as a:
        for path in (f"/v1/providers/{provider}", f"/v1/conversations/{conversation}", f"/v1/chats/{chat}"):
            assert a.get(path).status_code == 200, path
        assert a.get(f"/v1/documents/{document}").status_code == 200
        assert a.get(f"/v1/webhooks/{webhook}/deliveries/{delivery}").status_code == 200
        assert a.get(f"/v1/agents/{agent}").json()["system_prompt"] == "A's prompt"
        queued = a.get("/v1/handoffs", params={"status": "pending"}).json()["data"]
        assert [h["id"] for h in queued] == [handoff]
