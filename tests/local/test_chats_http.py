"""Seed 003's examples, on Parley's paths, against the local server; and the openai SDK on a chat."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest

from tests.local.conftest import Server

pytestmark = pytest.mark.local


@pytest.fixture
def http(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=30)


@pytest.fixture
def provider_id(http: httpx.Client) -> str:
    created = http.post(
        "/v1/providers", json={"type": "echo", "name": f"echo-{uuid.uuid4().hex[:12]}", "default_model": "echo"}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_seed_003_examples(http: httpx.Client, provider_id: str) -> None:
    # Create a chat (the seed's body, project_id included: it must be the key's project)
    chat = http.post(
        "/v1/chats",
        json={
            "project_id": "proj_local",
            "ai_provider_id": provider_id,
            "name": "Support Assistant",
            "system_message": "You are a helpful support assistant.",
        },
    )
    assert chat.status_code == 201, chat.text
    assert http.post("/v1/chats", json={"project_id": "proj_ABC", "ai_provider_id": provider_id}).status_code == 400
    # Run a stateless completion (the seed's body: provider, system message, messages; no model)
    stateless = http.post(
        "/v1/chats/completions",
        json={
            "ai_provider_id": provider_id,
            "system_message": "You are a helpful assistant.",
            "messages": [{"role": "user", "content": "Hello!"}],
        },
    )
    assert stateless.status_code == 200, stateless.text
    assert stateless.json()["choices"][0]["message"]["content"] == "Hello!"
    # Per-chat completion: only messages
    cid = chat.json()["id"]
    per_chat = http.post(f"/v1/chats/{cid}/completions", json={"messages": [{"role": "user", "content": "Hi there"}]})
    assert per_chat.json()["choices"][0]["message"]["content"] == "Hi there"
    # Streamed: SSE chunks ending with [DONE]
    with http.stream(
        "POST", f"/v1/chats/{cid}/completions", json={"stream": True, "messages": [{"role": "user", "content": "x y"}]}
    ) as streamed:
        lines = [line for line in streamed.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    # document_id instead of content
    document = http.post("/v1/documents", json={"name": "greeting.txt", "content": "Good morning!"}).json()
    by_document = http.post(
        f"/v1/chats/{cid}/completions", json={"messages": [{"role": "user", "document_id": document["id"]}]}
    )
    assert by_document.json()["choices"][0]["message"]["content"] == "Good morning!"
    both = http.post(
        f"/v1/chats/{cid}/completions",
        json={"messages": [{"role": "user", "document_id": document["id"], "content": "x"}]},
    )
    assert both.status_code == 400
    # a system override leaves the chat as stored
    http.post(
        f"/v1/chats/{cid}/completions",
        json={"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "ok"}]},
    )
    assert http.get(f"/v1/chats/{cid}").json()["system_message"] == "You are a helpful support assistant."
    assert http.post("/v1/documents", json={"name": "big", "content": "x" * (600 * 1024)}).status_code == 413


def test_openai_sdk_with_a_chat_as_base_url(server: Server, http: httpx.Client, provider_id: str) -> None:
    cid = http.post("/v1/chats", json={"ai_provider_id": provider_id, "system_message": "Be kind."}).json()["id"]
    client = openai.OpenAI(base_url=f"{server.url}/v1/chats/{cid}", api_key=server.key, max_retries=0)
    reply = client.chat.completions.create(model="any", messages=[{"role": "user", "content": "Through the chat"}])
    assert reply.choices[0].message.content == "Through the chat"
    assert reply.model == "echo"  # the chat's provider's default model, not the one the client named
    text = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model="any", messages=[{"role": "user", "content": "streamed too"}], stream=True
        )
        if chunk.choices
    )
    assert text == "streamed too"
    audit = http.get("/v1/audit-events", params={"limit": 2}).json()["data"]
    assert all(event["provider_id"] == provider_id for event in audit)
    assert all(event["resource_ids"] == [cid] for event in audit)
