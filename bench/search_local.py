"""The local search engine on a labelled synthetic corpus: ingest time, query latency, recall@10.

    .venv/bin/python -m bench.search_local [N]      (N chunks, default 10000)

The corpus is generated deterministically (seeded): 20 topics, each with a vocabulary of 40
made-up words, plus 60 common words shared by all. Every chunk is 40 words drawn mostly from its
topic's vocabulary. Documents hold 10 chunks each. 200 chunks (fewer when N is small) are labelled
targets: each gets a planted fact, a unique code word (like `vokeltra417`) and a signature of four
topic words, and three distractor chunks of the same topic get three of the four signature words.
Each target has one query: the even ones ask with the code word and two signature words (a rare
word BM25 should catch), the odd ones with the four signature words only (a paraphrase-like query
where no single word is rare, and the distractors compete).

Embeddings come from a hashed bag of words (256 dimensions, signed feature hashing of the
lowercased tokens, L2-normalised): deterministic, local and free, so the bench does not depend on
the embedding provider; pass another `embed` to `run` to swap it. With a lexical embedding the
k-NN list is a second lexical ranking, so the recall columns measure the plumbing and the fusion,
not a semantic model.

The table: ingest time (total and per 1,000 chunks), fused query p50/p95 in ms, and recall@10 for
BM25 alone, k-NN alone and fused. Then the same queries go through the OpenSearch adapter against
the fake OpenSearch (tests/unit/search/fake_opensearch.py, which answers 400 to any body outside
the adapter's pinned shapes) over a slice of the corpus, and every request body is checked for
the tenant filter: "bodies: N checked".
"""

from __future__ import annotations

import hashlib
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley.search.base import ChunkDoc, ChunkQuery
from parley.search.local import LocalSearchEngine
from parley.search.opensearch import OpenSearchEngine
from tests.unit.search.fake_opensearch import FakeOpenSearch, client_for

Embed = Callable[[str], list[float]]
PROJECT, INDEX = "proj_bench", "idx_bench"
TOPICS, TOPIC_WORDS, COMMON_WORDS, CHUNK_WORDS, PER_DOCUMENT = 20, 40, 60, 40, 10
DIMENSION = 256
FAKE_SLICE = 1000  # chunks ingested into the fake OpenSearch (its BM25 is a slow loop on purpose)


def hashed_embedding(text: str, dimension: int = DIMENSION) -> list[float]:
    vector = [0.0] * dimension
    for token in text.lower().split():
        digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
        slot = int.from_bytes(digest[:4], "little") % dimension
        vector[slot] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def _word(rng: random.Random) -> str:
    syllables = ["ka", "lo", "mi", "ver", "tra", "sen", "dul", "pho", "rin", "zek", "ul", "os", "bre", "nia", "gat"]
    return "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))


@dataclass(frozen=True)
class Labelled:
    query: str
    target: str  # chunk id


def corpus(n: int, seed: int = 16) -> tuple[list[ChunkDoc], list[Labelled], Embed]:
    rng = random.Random(seed)
    common = [_word(rng) for _ in range(COMMON_WORDS)]
    topics = [[_word(rng) + _word(rng) for _ in range(TOPIC_WORDS)] for _ in range(TOPICS)]
    texts: list[list[str]] = []
    for i in range(n):
        topic = topics[i % TOPICS]
        texts.append([rng.choice(topic) if rng.random() < 0.7 else rng.choice(common) for _ in range(CHUNK_WORDS)])
    labelled: list[Labelled] = []
    targets = min(200, n // 5)
    stride = n // max(targets, 1)
    for t in range(targets):
        i = t * stride
        topic = topics[i % TOPICS]
        signature = rng.sample(topic, 4)
        code = f"{_word(rng)}{rng.randint(100, 999)}"
        texts[i][5:11] = [code, *signature, code]
        for d in range(1, 4):  # distractors: same topic, three of the four signature words
            j = (i + d * TOPICS) % n
            texts[j][5:8] = signature[:3]
        query = f"{code} {signature[0]} {signature[1]}" if t % 2 == 0 else " ".join(signature)
        labelled.append(Labelled(query, _chunk_id(i)))
    chunks = []
    for i, words in enumerate(texts):
        text = " ".join(words)
        doc = f"doc_{i // PER_DOCUMENT:05d}"
        chunks.append(ChunkDoc(PROJECT, INDEX, doc, _chunk_id(i), i % PER_DOCUMENT, text, 0, len(text), ()))
    return chunks, labelled, hashed_embedding


def _chunk_id(i: int) -> str:
    return f"doc_{i // PER_DOCUMENT:05d}#{i % PER_DOCUMENT}"


def _embedded(chunks: Sequence[ChunkDoc], embed: Embed) -> list[ChunkDoc]:
    return [
        ChunkDoc(c.project_id, c.index_id, c.document_id, c.chunk_id, c.ordinal, c.text, c.start, c.end, embed(c.text))
        for c in chunks
    ]


def _ingest(engine: Any, chunks: Sequence[ChunkDoc]) -> None:
    by_document: dict[str, list[ChunkDoc]] = {}
    for c in chunks:
        by_document.setdefault(c.document_id, []).append(c)
    for document_id, group in by_document.items():
        engine.put_chunks(PROJECT, INDEX, document_id, group)


def _recall(engine: Any, labelled: Sequence[Labelled], embed: Embed, mode: str) -> tuple[float, list[float]]:
    found, times = 0, []
    for item in labelled:
        text = "" if mode == "knn" else item.query
        vector = [] if mode == "bm25" else embed(item.query)
        start = time.perf_counter()
        hits = engine.query_chunks(ChunkQuery(PROJECT, INDEX, text, vector, top_k=10))
        times.append((time.perf_counter() - start) * 1000)
        found += any(h.chunk_id == item.target for h in hits)
    return found / max(len(labelled), 1), times


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def run(n: int = 10_000, *, embed: Embed | None = None, out: Callable[[str], None] = print) -> dict[str, float]:
    chunks, labelled, default_embed = corpus(n)
    embed = embed or default_embed
    embedded = _embedded(chunks, embed)
    with tempfile.TemporaryDirectory(prefix="parley-bench-search-") as folder:
        engine = LocalSearchEngine(Path(folder) / "search.sqlite3")
        start = time.perf_counter()
        _ingest(engine, embedded)
        ingest = time.perf_counter() - start
        engine.query_chunks(ChunkQuery(PROJECT, INDEX, "warm", embed("warm"), top_k=10))  # builds the vector cache
        recall_bm25, _ = _recall(engine, labelled, embed, "bm25")
        recall_knn, _ = _recall(engine, labelled, embed, "knn")
        recall_fused, times = _recall(engine, labelled, embed, "fused")
        engine.close()
    result = {
        "chunks": float(n),
        "queries": float(len(labelled)),
        "ingest_s": ingest,
        "ingest_per_1k_s": ingest / n * 1000,
        "p50_ms": _percentile(times, 0.5),
        "p95_ms": _percentile(times, 0.95),
        "recall_bm25": recall_bm25,
        "recall_knn": recall_knn,
        "recall_fused": recall_fused,
    }
    out(f"local search engine: {n} chunks, {len(labelled)} labelled queries, hashed bag-of-words {DIMENSION}d")
    out(f"{'measure':<28}{'value':>12}")
    rows = [
        ("ingest total (s)", f"{ingest:.2f}"),
        ("ingest per 1k chunks (s)", f"{result['ingest_per_1k_s']:.3f}"),
        ("fused query p50 (ms)", f"{result['p50_ms']:.1f}"),
        ("fused query p95 (ms)", f"{result['p95_ms']:.1f}"),
        ("recall@10 BM25 alone", f"{recall_bm25:.3f}"),
        ("recall@10 k-NN alone", f"{recall_knn:.3f}"),
        ("recall@10 fused", f"{recall_fused:.3f}"),
    ]
    for name, value in rows:
        out(f"{name:<28}{value:>12}")
    result["bodies_checked"] = float(_through_fake(embedded, labelled, embed, out))
    return result


def _through_fake(
    chunks: Sequence[ChunkDoc], labelled: Sequence[Labelled], embed: Embed, out: Callable[[str], None]
) -> int:
    fake = FakeOpenSearch().start()
    try:
        engine = OpenSearchEngine(
            "http://127.0.0.1", "us-east-1", index_prefix="bench", dimension=DIMENSION, client=client_for(fake)
        )
        sliced = chunks[:FAKE_SLICE]
        _ingest(engine, sliced)
        kept = {c.chunk_id for c in sliced}
        asked = [item for item in labelled if item.target in kept]
        recall, _ = _recall(engine, asked, embed, "fused")
        tenant = {"term": {"project_id": PROJECT}}
        checked = 0
        for _method, path, body in fake.log:
            if path.endswith("/_msearch"):
                for query in body[1::2]:
                    inner = query["query"]
                    filters = (
                        inner["knn"]["vector"]["filter"]["bool"]["filter"]
                        if "knn" in inner
                        else inner["bool"]["filter"]
                    )
                    assert filters[0] == tenant, query
                    checked += 1
            elif path.endswith("/_search"):
                assert body["query"]["bool"]["filter"][0] == tenant, body
                checked += 1
            elif path.endswith("/_bulk"):
                assert all(set(next(iter(line.values()))) <= {"_index", "_id"} for line in body[::2] if "index" in line)
                checked += 1
        out(f"opensearch adapter vs the fake: {len(sliced)} chunks, {len(asked)} queries, recall@10 fused {recall:.3f}")
        out(f"bodies: {checked} checked")
        return checked
    finally:
        fake.stop()


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
