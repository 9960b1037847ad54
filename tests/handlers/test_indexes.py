"""Knowledge indexes through their handlers, on moto, the local search engine and the local
embedding model: documents ingested inline and by the worker, replaced, deleted, counted; the
late writes a delete must not let back in; retrieval (RAG) on every completion path."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from parley.aws import clients
from parley.domain.errors import ProviderError, SearchUnavailable
from parley.domain.principal import Principal
from parley.services import indexes
from parley.settings import get_settings
from tests.handlers.api import Api, Reply

OWNER = Principal(org_id="org_1", project_id="proj_a", key_id="key_a", permissions=("*",))
OTHER = Principal(org_id="org_1", project_id="proj_b", key_id="key_b", permissions=("*",))

REFUNDS = (
    "# Refund policy\n\n"
    "Customers can ask for a refund within 30 days of purchase. Refunds go back to the original payment "
    "method within 5 business days. Digital downloads are refundable only if they were never opened."
)
DISTRACTORS = {
    "shipping": "# Shipping\n\nOrders ship within 2 business days. Express shipping costs $15 and arrives next day.",
    "security": "# Account security\n\nEnable two-factor authentication in Settings. Passwords need 12 characters.",
    "pricing": "# Pricing\n\nThe Pro plan costs $20 per month per seat, billed yearly. Teams of 50 get a discount.",
    "careers": "# Careers\n\nWe hire remote engineers in Europe and the Americas. Apply through our jobs page.",
}


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def make_index(api: Api, **body: Any) -> dict[str, Any]:
    reply = api.call("indexes_create", {"name": "help-center", "embedding_model": "local", **body})
    assert reply.status == 201, reply.body
    return dict(reply.body)


def add(api: Api, index_id: str, body: dict[str, Any], *, principal: Principal | None = None) -> Reply:
    return api.call("index_documents_create", body, path={"index_id": index_id}, principal=principal)


def query(api: Api, index_id: str, text: str, **options: Any) -> list[dict[str, Any]]:
    reply = api.call("index_query", {"query": text, **options}, path={"index_id": index_id})
    assert reply.status == 200, reply.body
    return list(reply.body["data"])


def counts(api: Api, index_id: str) -> dict[str, int]:
    reply = api.call("indexes_get", path={"index_id": index_id})
    assert reply.status == 200, reply.body
    return dict(reply.body["counts"])


def help_center(api: Api) -> str:
    index_id = str(make_index(api)["id"])
    assert add(api, index_id, {"id": "refunds", "text": REFUNDS, "media_type": "text/markdown"}).status == 201
    for name, text in DISTRACTORS.items():
        assert add(api, index_id, {"id": name, "text": text, "media_type": "text/markdown"}).status == 201
    return index_id


def run_worker(load_handler: Any, lambda_context: Any) -> list[str]:
    """Deliver every message of the ingest queue to index_ingest, as SQS would."""
    sqs = clients().sqs
    url = sqs.get_queue_url(QueueName=get_settings().ingest_queue)["QueueUrl"]
    bodies: list[str] = []
    for _ in range(60):
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            names = ["ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessagesNotVisible"]
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            if all(int(attributes.get(name, 0)) == 0 for name in names):
                break
            time.sleep(0.25)  # a retry waits out its delay
            continue
        for message in batch:
            bodies.append(message["Body"])
            event = {"Records": [{"messageId": message["MessageId"], "body": message["Body"]}]}
            answer = load_handler("index_ingest")(event, lambda_context)
            assert answer == {"batchItemFailures": []}
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_an_index_learns_its_dimension_and_counts_its_documents(api: Api) -> None:
    created = make_index(api, chunking={"max_tokens": 128, "overlap_tokens": 16})
    assert created["embedding_model"] == "local" and created["dimensions"] > 0
    assert created["chunking"] == {"max_tokens": 128, "overlap_tokens": 16}
    index_id = created["id"]
    added = add(
        api, index_id, {"id": "refunds", "text": REFUNDS, "media_type": "text/markdown", "metadata": {"lang": "en"}}
    )
    assert added.status == 201, added.body
    assert added.body["status"] == "ready" and added.body["chunks"] >= 1
    assert counts(api, index_id) == {
        "documents": 1,
        "processing": 0,
        "ready": 1,
        "failed": 0,
        "chunks": added.body["chunks"],
    }
    listed = api.call("index_documents_list", path={"index_id": index_id}).body
    assert [d["id"] for d in listed["data"]] == ["refunds"]
    assert listed["data"][0]["metadata"] == {"lang": "en"}


def test_the_right_chunk_ranks_first_among_distractors(api: Api) -> None:
    index_id = help_center(api)
    hits = query(api, index_id, "What is our refund policy?", top_k=3)
    assert hits[0]["document_id"] == "refunds"
    assert "30 days" in hits[0]["text"]
    assert 0 < hits[0]["score"] <= 1
    assert REFUNDS[hits[0]["start"] : hits[0]["end"]].startswith(hits[0]["text"][:20])
    assert len(hits) <= 3


def test_a_filter_and_min_score_narrow_the_hits(api: Api) -> None:
    index_id = str(make_index(api)["id"])
    add(api, index_id, {"id": "en", "text": REFUNDS, "metadata": {"lang": "en"}})
    add(api, index_id, {"id": "de", "text": REFUNDS.replace("refund", "Erstattung"), "metadata": {"lang": "de"}})
    assert {h["document_id"] for h in query(api, index_id, "refund", filter={"lang": "de"})} == {"de"}
    assert query(api, index_id, "refund", min_score=1.0) == [] or all(
        h["score"] >= 1.0 for h in query(api, index_id, "refund", min_score=1.0)
    )


def test_readding_a_document_replaces_its_chunks_and_an_unchanged_one_does_nothing(api: Api) -> None:
    index_id = str(make_index(api)["id"])
    first = add(api, index_id, {"id": "policy", "text": "Refunds within 30 days."}).body
    same = add(api, index_id, {"id": "policy", "text": "Refunds within 30 days."}).body
    assert same["updated_at"] == first["updated_at"]  # nothing was done
    changed = add(api, index_id, {"id": "policy", "text": "Returns are accepted for 90 days, no questions asked."})
    assert changed.status == 201 and changed.body["status"] == "ready"
    texts = [h["text"] for h in query(api, index_id, "refunds returns days")]
    assert any("90 days" in t for t in texts)
    assert not any("30 days" in t for t in texts)
    assert counts(api, index_id)["documents"] == 1 and counts(api, index_id)["ready"] == 1


def test_a_stored_document_can_be_added_by_its_id(api: Api) -> None:
    stored = api.call("documents_create", {"name": "refunds.md", "media_type": "text/markdown", "content": REFUNDS})
    assert stored.status == 201
    index_id = str(make_index(api)["id"])
    added = add(api, index_id, {"document_id": stored.body["id"]})
    assert added.status == 201 and added.body["source"] == "document" and added.body["name"] == "refunds.md"
    assert query(api, index_id, "refund window")[0]["document_id"] == stored.body["id"]
    missing = add(api, index_id, {"document_id": "doc_01JZ00000000000000000000ZZ"})
    assert missing.status == 400 and missing.body["error"]["code"] == "document_not_found"


def test_a_large_document_is_ingested_by_the_worker(api: Api, load_handler: Any, lambda_context: Any) -> None:
    index_id = str(make_index(api)["id"])
    big = "\n\n".join(f"## Section {i}\n\nParagraph {i} talks about topic number {i} in detail." for i in range(600))
    assert len(big.encode()) > 16 * 1024
    added = add(api, index_id, {"id": "manual", "text": big, "media_type": "text/markdown"})
    assert added.status == 202 and added.body["status"] == "processing"
    assert counts(api, index_id)["processing"] == 1
    run_worker(load_handler, lambda_context)
    document = api.call("index_documents_get", path={"index_id": index_id, "document_id": "manual"}).body
    assert document["status"] == "ready" and document["chunks"] > 1
    assert counts(api, index_id)["ready"] == 1 and counts(api, index_id)["processing"] == 0
    assert any(h["heading"] == "Section 417" for h in query(api, index_id, "topic number 417", top_k=5))


def test_a_model_that_refuses_fails_the_document_with_the_reason(api: Api) -> None:
    index_id = str(make_index(api)["id"])

    def refuse(*_: Any) -> list[list[float]]:
        raise ProviderError("input too long for the model", code="invalid_input", retryable=False)

    indexes.set_deps(indexes.Deps(embed=refuse))
    try:
        failed = add(api, index_id, {"id": "x", "text": "Some text."})
    finally:
        indexes.set_deps(None)
    assert failed.status == 201
    assert failed.body["status"] == "failed" and failed.body["error"]["code"] == "embedding_failed"
    assert counts(api, index_id)["failed"] == 1
    # re-adding a failed document tries again, even with the same text
    again = add(api, index_id, {"id": "x", "text": "Some text."})
    assert again.body["status"] == "ready" and counts(api, index_id)["failed"] == 0


def test_an_unavailable_engine_is_retried_by_the_worker_then_fails(
    api: Api, load_handler: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_id = str(make_index(api)["id"])
    monkeypatch.setattr(indexes, "INGEST_BACKOFF_SECONDS", (0, 0, 0, 0, 0))  # SQS's delays, not the test's

    class Down:
        def __getattr__(self, name: str) -> Any:
            def fail(*_: Any, **__: Any) -> Any:
                raise SearchUnavailable("the engine is down", retry_after=0)  # no wait: the test drains at once

            return fail

    indexes.set_deps(indexes.Deps(engine=Down))  # type: ignore[arg-type]
    try:
        added = add(api, index_id, {"id": "x", "text": "Some text."})
        assert added.status == 202 and added.body["status"] == "processing"  # handed to the worker
        attempts = run_worker(load_handler, lambda_context)
    finally:
        indexes.set_deps(None)
    assert [json.loads(b)["attempt"] for b in attempts] == list(range(2, indexes.MAX_INGEST_ATTEMPTS + 1))
    document = api.call("index_documents_get", path={"index_id": index_id, "document_id": "x"}).body
    assert document["status"] == "failed" and document["error"]["code"] == "search_unavailable"


def test_deleting_a_document_removes_its_chunks_and_counts(api: Api) -> None:
    index_id = help_center(api)
    before = counts(api, index_id)
    gone = api.call("index_documents_delete", path={"index_id": index_id, "document_id": "refunds"})
    assert gone.status == 200 and gone.body == {"id": "refunds", "object": "index.document", "deleted": True}
    assert all(h["document_id"] != "refunds" for h in query(api, index_id, "refund policy 30 days", top_k=10))
    after = counts(api, index_id)
    assert after["documents"] == before["documents"] - 1 and after["chunks"] < before["chunks"]
    again = api.call("index_documents_delete", path={"index_id": index_id, "document_id": "refunds"})
    assert again.status == 404


def test_a_worker_that_finishes_after_a_delete_takes_its_chunks_out(api: Api) -> None:
    """The late write: the chunks are put, then the document turns out deleted meanwhile."""
    index_id = str(make_index(api)["id"])
    real = indexes.Deps()

    class DeleteFirst:
        def __init__(self) -> None:
            self.engine = real.engine()

        def put_chunks(self, *args: Any) -> None:
            self.engine.put_chunks(*args)
            # a delete lands while this ingestion runs: the record goes (its chunks were not there yet)
            record = real.documents.find(OWNER.project_id, index_id, "late")
            assert record is not None
            real.documents.remove(record)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.engine, name)

    racing = DeleteFirst()
    indexes.set_deps(indexes.Deps(engine=lambda: racing))  # type: ignore[arg-type, return-value]
    try:
        add(api, index_id, {"id": "late", "text": "A zebra-striped policy nobody else mentions."})
    finally:
        indexes.set_deps(None)
    assert query(api, index_id, "zebra-striped policy") == []
    assert counts(api, index_id)["documents"] == 0


def test_deleting_an_index_removes_everything_and_is_final(api: Api) -> None:
    index_id = help_center(api)
    assert api.call("indexes_delete", path={"index_id": index_id}).status == 200
    assert api.call("indexes_get", path={"index_id": index_id}).status == 404
    assert api.call("index_query", {"query": "refund"}, path={"index_id": index_id}).status == 404
    assert add(api, index_id, {"id": "x", "text": "late"}).status == 404
    assert index_id not in [i["id"] for i in api.call("indexes_list").body["data"]]
    # nothing of it is left in the engine
    leftovers = (
        indexes.Deps()
        .engine()
        .query_chunks(
            indexes.ChunkQuery(project_id=OWNER.project_id, index_id=index_id, text="refund", vector=[0.0] * 8)
        )
    )
    assert list(leftovers) == []


def test_another_project_sees_nothing(api: Api) -> None:
    index_id = help_center(api)
    assert api.call("indexes_get", path={"index_id": index_id}, principal=OTHER).status == 404
    assert add(api, index_id, {"id": "x", "text": "mine now"}, principal=OTHER).status == 404
    other = api.call("index_query", {"query": "refund"}, path={"index_id": index_id}, principal=OTHER)
    assert other.status == 404


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"text": "x", "document_id": "doc_01JZ00000000000000000000AA"}, None),
        ({"id": "bad id with spaces", "text": "x"}, None),
        ({"id": "empty", "text": "   "}, "document_empty"),
        ({"id": "meta", "text": "x", "metadata": {"nested": {"no": 1}}}, None),
    ],
)
def test_bad_documents_get_a_clear_400(api: Api, body: dict[str, Any], code: str | None) -> None:
    index_id = str(make_index(api)["id"])
    reply = add(api, index_id, body)
    assert reply.status == 400, reply.body
    if code:
        assert reply.body["error"]["code"] == code


def test_an_unknown_embedding_model_is_a_400(api: Api) -> None:
    reply = api.call("indexes_create", {"name": "x", "embedding_model": "nobody/text-embed"})
    assert reply.status in (400, 404), reply.body
    assert reply.body["error"]["param"] == "embedding_model"


# retrieval on the completion paths


def test_a_completion_with_use_rag_gets_the_right_chunk_and_cites_it(api: Api, received: Any) -> None:
    index_id = help_center(api)
    reply = api.call(
        "completions_create",
        {
            "model": "echo",
            "messages": [{"role": "user", "content": "What is our refund policy?"}],
            "use_rag": True,
            "index_id": index_id,
            "rag": {"top_k": 2},
        },
    )
    assert reply.status == 200, reply.body
    citations = reply.body["citations"]
    assert citations[0]["document_id"] == "refunds" and len(citations) <= 2
    roles = [role for role, _ in received[-1]]
    assert roles == ["system", "user"]
    assert "[1] refunds" in received[-1][0][1] and "30 days" in received[-1][0][1]


def test_a_streamed_completion_carries_the_citations_on_its_first_chunk(api: Api) -> None:
    index_id = help_center(api)
    reply = api.call(
        "completions_create",
        {
            "model": "echo",
            "messages": [{"role": "user", "content": "refund policy?"}],
            "index_id": index_id,
            "stream": True,
        },
    )
    assert reply.status == 200
    chunks = [json.loads(line[6:]) for line in reply.body.splitlines() if line.startswith("data: {")]
    assert chunks[0]["citations"][0]["document_id"] == "refunds"
    assert all("citations" not in c for c in chunks[1:])


@pytest.mark.parametrize(
    ("extra", "code"),
    [({"use_rag": True}, "index_required"), ({"index_id": "idx_01JZ00000000000000000000ZZ"}, "index_not_found")],
)
def test_retrieval_without_a_usable_index_is_a_400(api: Api, extra: dict[str, Any], code: str) -> None:
    reply = api.call("completions_create", {"model": "echo", "messages": [{"role": "user", "content": "hi"}], **extra})
    assert reply.status == 400 and reply.body["error"]["code"] == code
    assert reply.body["error"]["param"] == "index_id"


def test_use_rag_false_turns_retrieval_off(api: Api, received: Any) -> None:
    index_id = help_center(api)
    body = {
        "model": "echo",
        "messages": [{"role": "user", "content": "refund?"}],
        "index_id": index_id,
        "use_rag": False,
    }
    reply = api.call("completions_create", body)
    assert reply.status == 200 and "citations" not in reply.body
    assert [role for role, _ in received[-1]] == ["user"]


def test_a_chat_with_an_index_retrieves_on_every_completion(api: Api, received: Any) -> None:
    index_id = help_center(api)
    provider = api.call("providers_create", {"type": "echo", "name": "echo-rag", "default_model": "echo"}).body
    chat = api.call("chats_create", {"ai_provider_id": provider["id"], "index_id": index_id})
    assert chat.status == 201 and chat.body["index_id"] == index_id
    reply = api.call(
        "chats_complete",
        {"messages": [{"role": "user", "content": "refund policy"}]},
        path={"chat_id": chat.body["id"]},
    )
    assert reply.status == 200 and reply.body["citations"][0]["document_id"] == "refunds"
    bad = api.call("chats_create", {"ai_provider_id": provider["id"], "index_id": "idx_01JZ00000000000000000000ZZ"})
    assert bad.status == 400 and bad.body["error"]["code"] == "index_not_found"


def test_a_conversation_with_an_index_stores_its_citations(api: Api, received: Any) -> None:
    index_id = help_center(api)
    created = api.call("conversations_create", {"title": "Refunds", "user_id": "u1", "index_id": index_id})
    assert created.status == 201 and created.body["index_id"] == index_id
    cid = created.body["id"]
    sent = api.call("messages_create", {"content": "What is our refund policy?"}, path={"conversation_id": cid})
    assert sent.status == 200, sent.body
    assert sent.body["citations"][0]["document_id"] == "refunds"
    assert any(role == "system" and "[1] refunds" in text for role, text in received[-1])
    history = api.call("messages_list", path={"conversation_id": cid}, query={"order": "asc"}).body["data"]
    assert history[1]["citations"] == sent.body["citations"] and "citations" not in history[0]
    context = api.call("context_get", path={"conversation_id": cid}).body
    assert context["last_call"]["retrieval"]["index_id"] == index_id
    assert context["last_call"]["retrieval"]["citations"][0]["chunk_id"] == sent.body["citations"][0]["chunk_id"]
    streamed = api.call(
        "messages_create", {"content": "refunds again?", "stream": True}, path={"conversation_id": cid}
    ).body
    start = next(
        json.loads(line[6:]) for line in streamed.splitlines() if line.startswith("data: ") and '"start"' in line
    )
    assert start["citations"][0]["document_id"] == "refunds"


def test_an_agents_knowledge_index_grounds_its_conversations(api: Api, received: Any) -> None:
    index_id = help_center(api)
    agent = api.call("agents_create", {"name": "refund_agent", "knowledge_index_id": index_id})
    assert agent.status == 201, agent.body
    cid = api.call("conversations_create", {"title": "x", "agent": agent.body["id"]}).body["id"]
    sent = api.call("messages_create", {"content": "refund policy please"}, path={"conversation_id": cid})
    assert sent.status == 200 and sent.body["citations"][0]["document_id"] == "refunds"
    off = api.call("conversations_update", {"use_rag": False}, path={"conversation_id": cid})
    assert off.status == 200
    quiet = api.call("messages_create", {"content": "refund policy please"}, path={"conversation_id": cid})
    assert "citations" not in quiet.body


def test_a_rate_limited_embedding_hands_the_document_to_the_worker(
    api: Api, load_handler: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parley.domain.errors import InvalidRequest, RateLimited

    index_id = str(make_index(api)["id"])
    monkeypatch.setattr(indexes, "INGEST_BACKOFF_SECONDS", (0, 0, 0, 0, 0))
    real = indexes.Deps()
    refusals = [RateLimited("over the project's tokens per minute", retry_after=0, code="rate_limit_exceeded")]

    def limited(*args: Any) -> list[list[float]]:
        if refusals:
            raise refusals.pop()
        return real.embed(*args)

    indexes.set_deps(indexes.Deps(embed=limited))
    try:
        added = add(api, index_id, {"id": "x", "text": "Refunds within 30 days."})
        assert added.status == 202 and added.body["status"] == "processing"
        run_worker(load_handler, lambda_context)
    finally:
        indexes.set_deps(None)
    assert api.call("index_documents_get", path={"index_id": index_id, "document_id": "x"}).body["status"] == "ready"

    def too_long(*_: Any) -> list[list[float]]:
        raise InvalidRequest("input 0 is over the model's 512 tokens", code="input_too_long", param="input")

    indexes.set_deps(indexes.Deps(embed=too_long))
    try:
        refused = add(api, index_id, {"id": "y", "text": "Another text."})
    finally:
        indexes.set_deps(None)
    assert refused.status == 201 and refused.body["status"] == "failed"
    assert refused.body["error"]["code"] == "input_too_long"
    assert counts(api, index_id)["processing"] == 0


def test_an_older_ingestion_that_lands_last_is_repaired(api: Api, load_handler: Any, lambda_context: Any) -> None:
    """v1's chunks are put after v2 finished (v2 was added while v1 was being embedded): v1's
    finish fails, and the worker ingests v2 again, so v2's chunks are what the index holds."""
    index_id = str(make_index(api)["id"])
    real = indexes.Deps()

    class Overtaken:
        def __init__(self) -> None:
            self.engine, self.first = real.engine(), True

        def put_chunks(self, project_id: str, index_id: str, document_id: str, chunks: Any) -> None:
            if self.first:  # v1, before its chunks land: v2 is added and ingested in full
                self.first = False
                indexes.set_deps(None)
                v2 = add(api, index_id, {"id": "doc", "text": "Version two: a heron-shaped clause."})
                assert v2.body["status"] == "ready"
                indexes.set_deps(indexes.Deps(engine=lambda: self))  # type: ignore[arg-type, return-value]
            self.engine.put_chunks(project_id, index_id, document_id, chunks)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.engine, name)

    overtaken = Overtaken()
    indexes.set_deps(indexes.Deps(engine=lambda: overtaken))  # type: ignore[arg-type, return-value]
    try:
        add(api, index_id, {"id": "doc", "text": "Version one: a pelican-shaped clause."})
    finally:
        indexes.set_deps(None)
    assert any("pelican" in h["text"] for h in query(api, index_id, "pelican heron clause"))  # v1's, for now
    run_worker(load_handler, lambda_context)
    texts = [h["text"] for h in query(api, index_id, "pelican heron clause")]
    assert texts and all("heron" in t for t in texts)
    document = api.call("index_documents_get", path={"index_id": index_id, "document_id": "doc"}).body
    assert document["status"] == "ready" and counts(api, index_id)["documents"] == 1
