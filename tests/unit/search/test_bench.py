"""bench/search_local.py runs end to end at a small size: the table prints, recall is sane, and
every OpenSearch body it sent through the fake passed the shape checks (no timing asserts)."""

from __future__ import annotations

from bench import search_local


def test_bench_runs_small() -> None:
    lines: list[str] = []
    result = search_local.run(300, out=lines.append)
    text = "\n".join(lines)
    for label in ("ingest total (s)", "fused query p95 (ms)", "recall@10 BM25 alone", "recall@10 fused", "bodies:"):
        assert label in text
    assert result["queries"] == 60
    assert result["recall_bm25"] >= 0.8
    assert result["recall_knn"] >= 0.5
    assert result["recall_fused"] >= 0.8
    assert result["bodies_checked"] >= 120  # two per hybrid query, plus scans and bulks
