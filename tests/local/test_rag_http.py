"""Issue 16's acceptance on the local server, over HTTP, with the official openai SDK:

- seed 000's example: `What is our refund policy?` against an index holding a refund policy among
  distractor documents is answered from the right chunk, and cites it (the extension field read
  from the raw response). The model is an OpenAI-compatible server on 127.0.0.1 that answers with
  the first knowledge excerpt it was given (`first_excerpt`), so the answer shows which chunk reached the model;
- message search finds a word sent moments earlier (the lag is measured and printed), ranks an
  exact phrase above scattered words, and forgets a deleted conversation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.local.conftest import Server
from tests.local.models import ScriptedModel, system_text

pytestmark = pytest.mark.local

REFUNDS = (
    "# Refund policy\n\n"
    "Customers can ask for a refund within 30 days of purchase. Refunds go back to the original payment "
    "method within 5 business days."
)
DISTRACTORS = [
    "# Shipping\n\nOrders ship within 2 business days. Express shipping costs $15 and arrives next day.",
    "# Account security\n\nEnable two-factor authentication in Settings. Passwords need 12 characters.",
    "# Pricing\n\nThe Pro plan costs $20 per month per seat, billed yearly. Teams of 50 get a discount.",
    "# Careers\n\nWe hire remote engineers in Europe and the Americas. Apply through our jobs page.",
    "# Office hours\n\nSupport answers chats from 8am to 8pm CET on weekdays and 10am to 4pm on weekends.",
]


def first_excerpt(request: dict[str, Any]) -> str:
    """The answer of a model that reads the first knowledge excerpt of its context: the text after
    the `[1] ...` line of Parley's RAG system message, or `no excerpt`."""
    system = system_text(request)
    if "\n[1] " not in system:
        return "no excerpt"
    excerpt = system.split("\n[1] ", 1)[1].split("\n\n[2] ", 1)[0]
    return excerpt.split("\n", 1)[1] if "\n" in excerpt else excerpt


@pytest.fixture
def reader() -> Iterator[ScriptedModel]:
    model = ScriptedModel(first_excerpt)
    yield model
    model.close()


def ok(http: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    response = http.request(method, path, json=body)
    assert response.status_code in (200, 201), (method, path, response.status_code, response.text)
    return response.json()


def test_seed_000_refund_policy_is_answered_from_the_right_chunk(server: Server, reader: ScriptedModel) -> None:
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60)
    provider = ok(
        http,
        "POST",
        "/v1/providers",
        {"type": "openai", "name": f"reader-{time.time_ns()}", "base_url": reader.base_url, "api_key": "sk-local"},
    )
    index = ok(http, "POST", "/v1/indexes", {"name": "help-center", "embedding_model": "local"})
    ok(
        http,
        "POST",
        f"/v1/indexes/{index['id']}/documents",
        {"id": "refund-policy", "text": REFUNDS, "media_type": "text/markdown"},
    )
    for i, text in enumerate(DISTRACTORS):
        ok(
            http,
            "POST",
            f"/v1/indexes/{index['id']}/documents",
            {"id": f"other-{i}", "text": text, "media_type": "text/markdown"},
        )

    # a large document goes to the ingestion worker (the local server's queue consumer)
    manual = "\n\n".join(f"## Part {i}\n\nThe warranty clause {i} covers accidental damage." for i in range(500))
    queued = http.post(
        f"/v1/indexes/{index['id']}/documents", json={"id": "manual", "text": manual, "media_type": "text/markdown"}
    )
    assert queued.status_code == 202 and queued.json()["status"] == "processing", queued.text
    deadline = time.monotonic() + 60
    while ok(http, "GET", f"/v1/indexes/{index['id']}/documents/manual")["status"] == "processing":
        assert time.monotonic() < deadline, "the ingestion worker never finished the document"
        time.sleep(0.2)
    assert ok(http, "GET", f"/v1/indexes/{index['id']}/documents/manual")["status"] == "ready"

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=f"{provider['name']}/reader-1",
        messages=[{"role": "user", "content": "What is our refund policy?"}],
        extra_body={"use_rag": True, "index_id": index["id"], "rag": {"top_k": 3}},
    )
    completion = raw.parse()
    answer = completion.choices[0].message.content or ""
    assert "refund within 30 days" in answer  # the model read the refund policy's chunk first
    citations = json.loads(raw.text)["citations"]
    assert citations[0]["document_id"] == "refund-policy"
    assert REFUNDS[citations[0]["start"] : citations[0]["end"]] == citations[0]["text"]
    assert (completion.model_extra or {})["citations"][0]["chunk_id"] == citations[0]["chunk_id"]


def test_message_search_finds_ranks_and_forgets(server: Server) -> None:
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60)
    cid = ok(http, "POST", "/v1/conversations", {"title": "Search", "user_id": "searcher"})["id"]
    word = f"wombat{time.time_ns() % 10**8}"
    ok(
        http,
        "POST",
        f"/v1/conversations/{cid}/messages",
        {"content": f"the {word} refund arrived late and policy was unclear"},
    )
    sent = time.monotonic()
    ok(http, "POST", f"/v1/conversations/{cid}/messages", {"content": f"explain the {word} refund policy please"})

    def search(q: str) -> list[dict[str, Any]]:
        return list(ok(http, "GET", f"/v1/search/messages?q={q}&user_id=searcher")["data"])

    lag = None
    while time.monotonic() - sent < 30:
        if len([h for h in search(word) if h["role"] == "user"]) == 2:
            lag = time.monotonic() - sent
            break
        time.sleep(0.1)
    assert lag is not None, "the messages never became searchable"
    print(f"message search lag on the local server: {lag:.2f} s")
    ranked = [h for h in search(f"{word} refund policy") if h["role"] == "user"]
    assert "explain the" in ranked[0]["snippet"]
    assert f"<mark>{word}</mark>" in ranked[0]["snippet"]

    ok(http, "DELETE", f"/v1/conversations/{cid}")
    deadline = time.monotonic() + 30
    while search(word) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert search(word) == []
