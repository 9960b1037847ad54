"""One contract for every search adapter: the local engine (SQLite FTS5 + numpy) and the
OpenSearch Serverless adapter talking real HTTP to the fake OpenSearch on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest

from parley.search.base import ChunkDoc, ChunkQuery, MessageDoc, MessageQuery, SearchEngine

P, Q = "proj_a", "proj_b"
IDX = "idx_1"
X, Y, Z, W = [1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]


def chunk(doc: str, n: int, text: str, vector: list[float], project: str = P, **metadata: Any) -> ChunkDoc:
    return ChunkDoc(project, IDX, doc, f"{doc}#{n}", n, text, n * 100, n * 100 + len(text), vector, None, metadata)


def ask(text: str, vector: list[float], project: str = P, **kw: Any) -> ChunkQuery:
    return ChunkQuery(project, IDX, text, vector, **kw)


def ids(hits: Any) -> list[str]:
    return [h.chunk_id for h in hits]


def seed(engine: SearchEngine) -> None:
    engine.put_chunks(
        P,
        IDX,
        "doc_1",
        [
            chunk("doc_1", 0, "Refunds are paid back within five business days", X, lang="en", tier=1),
            chunk("doc_1", 1, "Shipping to Norway takes a week", Y, lang="en", tier=2),
        ],
    )
    engine.put_chunks(
        P, IDX, "doc_2", [chunk("doc_2", 0, "The serial prefix is QX7781 for every kettle", Z, lang="de")]
    )


def test_put_and_query_ranks_both_lists(engine: SearchEngine) -> None:
    seed(engine)
    hits = engine.query_chunks(ask("refunds paid", X, top_k=3))
    assert hits[0].chunk_id == "doc_1#0"
    assert hits[0].score == pytest.approx(1.0)  # rank 1 in both lists
    assert 0 < hits[-1].score <= 1
    first = hits[0]
    assert (first.document_id, first.ordinal, first.start, first.metadata) == ("doc_1", 0, 0, {"lang": "en", "tier": 1})


def test_replace_drops_old_chunks_and_delete_document(engine: SearchEngine) -> None:
    seed(engine)
    engine.put_chunks(P, IDX, "doc_1", [chunk("doc_1", 0, "Refunds now take ten days", X)])
    assert ids(engine.query_chunks(ask("shipping norway", Y, top_k=10))).count("doc_1#1") == 0
    assert engine.query_chunks(ask("refunds", X, top_k=1))[0].text == "Refunds now take ten days"
    engine.delete_document(P, IDX, "doc_1")
    assert {h.document_id for h in engine.query_chunks(ask("refunds", X, top_k=10))} == {"doc_2"}
    engine.put_chunks(P, IDX, "doc_2", [])
    assert engine.query_chunks(ask("kettle", Z)) == []


def test_delete_index(engine: SearchEngine) -> None:
    seed(engine)
    engine.delete_index(P, IDX)
    assert engine.query_chunks(ask("refunds", X)) == []


def test_tenant_isolation_with_identical_text(engine: SearchEngine) -> None:
    seed(engine)
    engine.put_chunks(Q, IDX, "doc_1", [chunk("doc_1", 0, "Refunds are paid back within five business days", X, Q)])
    engine.put_chunks(Q, IDX, "doc_9", [chunk("doc_9", 0, "secret of project b: refunds", X, Q)])
    hits = engine.query_chunks(ask("refunds secret", X, top_k=10))
    assert "secret of project b: refunds" not in [h.text for h in hits]
    assert {h.document_id for h in hits} <= {"doc_1", "doc_2"}
    engine.delete_index(Q, IDX)
    assert engine.query_chunks(ask("refunds", X, top_k=10))  # project a untouched


def test_metadata_filter_is_exact(engine: SearchEngine) -> None:
    seed(engine)
    assert {h.chunk_id for h in engine.query_chunks(ask("kettle refunds", Z, top_k=10, filter={"lang": "de"}))} == {
        "doc_2#0"
    }
    assert ids(engine.query_chunks(ask("shipping", Y, top_k=10, filter={"lang": "en", "tier": 2}))) == ["doc_1#1"]
    assert engine.query_chunks(ask("shipping", Y, top_k=10, filter={"tier": "2"})) == []  # typed
    assert engine.query_chunks(ask("shipping", Y, top_k=10, filter={"missing": "x"})) == []


def test_top_k_and_min_score(engine: SearchEngine) -> None:
    seed(engine)
    assert len(engine.query_chunks(ask("refunds shipping kettle", X, top_k=2))) == 2
    hits = engine.query_chunks(ask("refunds", X, top_k=10, min_score=0.9))
    assert ids(hits) == ["doc_1#0"]
    assert all(h.score >= 0.9 for h in hits)


def test_knn_only_when_text_has_no_terms(engine: SearchEngine) -> None:
    seed(engine)
    for text in ("", "the of and", "?!  -- **"):
        hits = engine.query_chunks(ask(text, Z, top_k=1))
        assert ids(hits) == ["doc_2#0"]
        assert hits[0].score == pytest.approx(1.0)  # one list: rank 1 normalises to 1


def test_bm25_finds_a_rare_word_the_vector_misses(engine: SearchEngine) -> None:
    seed(engine)
    hits = engine.query_chunks(ask("QX7781", W, top_k=3))  # the vector points nowhere near doc_2
    assert hits[0].chunk_id == "doc_2#0"


@pytest.mark.parametrize(
    "text",
    ['"', '"unbalanced', "refunds*", "NEAR(refunds paid, 2)", "refunds AND NOT", "-refunds", "text:refunds", "^a OR"],
)
def test_hostile_query_text(engine: SearchEngine, text: str) -> None:
    seed(engine)
    hits = engine.query_chunks(ask(text, X, top_k=3))
    assert all(0 < h.score <= 1 for h in hits)
    if "refunds" in text:
        assert hits[0].chunk_id == "doc_1#0"


def message(mid: str, content: str, conv: str = "conv_1", user: str | None = "u1", project: str = P) -> MessageDoc:
    return MessageDoc(project, conv, mid, "user", content, f"2026-01-01T00:00:{mid[-2:]}Z", user)


def find(engine: SearchEngine, q: str, **kw: Any) -> Any:
    return engine.search_messages(MessageQuery(P, q, **kw))


def test_exact_phrase_ranks_above_scattered_words(engine: SearchEngine) -> None:
    engine.put_messages(
        [
            message("m01", "the invoice was late and the payment failed twice, payment failed"),
            message("m02", "failed to send; payment reminder"),
            message("m03", "my payment failed yesterday"),
            message("m04", "nothing relevant here"),
        ]
    )
    page = find(engine, "payment failed")
    assert [h.message_id for h in page.hits][:2] == ["m01", "m03"] or [h.message_id for h in page.hits][:2] == [
        "m03",
        "m01",
    ]
    assert page.hits[-1].message_id == "m02"
    assert "m04" not in [h.message_id for h in page.hits]


def test_highlight_marks_matches_and_escapes_markup(engine: SearchEngine) -> None:
    engine.put_messages([message("m01", "Use <script>alert(1)</script> & the refund form")])
    (hit,) = find(engine, "refund").hits
    assert "<mark>refund</mark>" in hit.snippet
    assert "<script>" not in hit.snippet and "&lt;script&gt;" in hit.snippet and "&amp;" in hit.snippet


def test_user_and_conversation_filters_and_tenant(engine: SearchEngine) -> None:
    engine.put_messages(
        [
            message("m01", "kettle descaling", "conv_1", "u1"),
            message("m02", "kettle warranty", "conv_2", "u2"),
            message("m03", "kettle for project b", "conv_1", "u1", project=Q),
        ]
    )
    assert {h.message_id for h in find(engine, "kettle").hits} == {"m01", "m02"}
    assert [h.message_id for h in find(engine, "kettle", user_id="u2").hits] == ["m02"]
    assert [h.message_id for h in find(engine, "kettle", conversation_id="conv_1").hits] == ["m01"]
    assert find(engine, "kettle", user_id="u2", conversation_id="conv_1").hits == []


def test_paging_with_more(engine: SearchEngine) -> None:
    engine.put_messages([message(f"m{i:02d}", f"kettle note number {i}") for i in range(5)])
    first, second, last = (find(engine, "kettle", limit=2, offset=o) for o in (0, 2, 4))
    assert (len(first.hits), first.more, len(second.hits), second.more, len(last.hits), last.more) == (
        2,
        True,
        2,
        True,
        1,
        False,
    )
    seen = [h.message_id for page in (first, second, last) for h in page.hits]
    assert sorted(seen) == [f"m{i:02d}" for i in range(5)]


def test_upsert_replaces_and_deletes(engine: SearchEngine) -> None:
    engine.put_messages([message("m01", "original wording about kettles"), message("m02", "kettles again")])
    engine.put_messages([message("m01", "edited text about toasters")])
    assert [h.message_id for h in find(engine, "kettles").hits] == ["m02"]
    assert [h.message_id for h in find(engine, "toasters").hits] == ["m01"]
    engine.delete_messages(P, "conv_1", ["m02"])
    assert find(engine, "kettles").hits == []


def test_delete_conversation_forgets_it(engine: SearchEngine) -> None:
    engine.put_messages([message("m01", "kettle", "conv_1"), message("m02", "kettle", "conv_2")])
    engine.delete_conversation(P, "conv_1")
    assert [h.conversation_id for h in find(engine, "kettle").hits] == ["conv_2"]


@pytest.mark.parametrize("q", ['"', "kettle*", "NEAR(kettle)", "kettle AND OR NOT", "content:kettle", "", "  -  "])
def test_hostile_message_queries(engine: SearchEngine, q: str) -> None:
    engine.put_messages([message("m01", "kettle descaling")])
    page = find(engine, q)
    assert [h.message_id for h in page.hits] == (["m01"] if "kettle" in q else [])


def test_empty_engine_answers_empty(engine: SearchEngine) -> None:
    assert engine.query_chunks(ask("refunds", X)) == []
    assert find(engine, "kettle").hits == []
    engine.delete_conversation(P, "conv_1")
    engine.delete_index(P, IDX)
