"""What only the local engine has: one SQLite file shared by processes and threads, the vector
cache invalidated by another process's write, its failure mode, and the factory."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from parley.domain.errors import SearchUnavailable
from parley.search import factory
from parley.search.base import ChunkDoc, ChunkQuery, MessageDoc, MessageQuery
from parley.search.local import LocalSearchEngine
from parley.search.opensearch import OpenSearchEngine
from parley.settings import Settings

P, IDX = "proj_a", "idx"


def _chunk(doc: str, text: str, vector: list[float]) -> ChunkDoc:
    return ChunkDoc(P, IDX, doc, f"{doc}#0", 0, text, 0, len(text), vector)


def _write_from_another_process(path: str) -> None:
    LocalSearchEngine(path).put_chunks(P, IDX, "doc_new", [_chunk("doc_new", "written elsewhere", [0.0, 1.0])])


def test_another_process_write_invalidates_the_vector_cache(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite3")
    engine = LocalSearchEngine(path)
    engine.put_chunks(P, IDX, "doc_old", [_chunk("doc_old", "already here", [1.0, 0.0])])
    assert [h.document_id for h in engine.query_chunks(ChunkQuery(P, IDX, "", [0.0, 1.0], top_k=1))] == ["doc_old"]
    process = multiprocessing.get_context("spawn").Process(target=_write_from_another_process, args=(path,))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert [h.document_id for h in engine.query_chunks(ChunkQuery(P, IDX, "", [0.0, 1.0], top_k=1))] == ["doc_new"]


def test_threads_write_and_read_at_once(tmp_path: Path) -> None:
    engine = LocalSearchEngine(tmp_path / "s.sqlite3")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                engine.put_messages(
                    [MessageDoc(P, f"c{n}", f"m{i}", "user", f"kettle {n} {i}", "2026-01-01T00:00:00Z")]
                )
                engine.search_messages(MessageQuery(P, "kettle"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], [repr(e) for e in errors]
    assert len(engine.search_messages(MessageQuery(P, "kettle", limit=100)).hits) == 40


def test_a_database_that_cannot_be_opened_is_search_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SearchUnavailable):
        LocalSearchEngine(blocker / "s.sqlite3").search_messages(MessageQuery(P, "kettle"))


def test_a_wrong_query_dimension_is_a_bug(tmp_path: Path) -> None:
    engine = LocalSearchEngine(tmp_path / "s.sqlite3")
    engine.put_chunks(P, IDX, "d", [_chunk("d", "x", [1.0, 0.0])])
    with pytest.raises(ValueError, match="dimensions"):
        engine.query_chunks(ChunkQuery(P, IDX, "", [1.0, 0.0, 0.0]))


def test_factory_chooses_caches_and_injects(tmp_path: Path) -> None:
    local = Settings(stage="local", search_path=str(tmp_path / "s.sqlite3"))
    built = factory.build_engine(local)
    assert isinstance(built, LocalSearchEngine) and built.path == tmp_path / "s.sqlite3"
    remote = factory.build_engine(
        Settings(search_endpoint="https://x.us-east-1.aoss.amazonaws.com", search_dimension=8)
    )
    assert isinstance(remote, OpenSearchEngine) and remote.dimension == 8 and remote.region == "us-east-1"
    with pytest.raises(ValueError, match="PARLEY_SEARCH_ENDPOINT"):
        factory.build_engine(Settings())
    with pytest.raises(ValueError, match="local or opensearch"):
        factory.build_engine(Settings(search_engine="tantivy"))
    try:
        factory.set_engine(None)
        first = factory.engine(local)
        assert factory.engine() is first
        factory.set_engine(built)
        assert factory.engine() is built
    finally:
        factory.set_engine(None)


def test_settings_read_the_search_environment() -> None:
    s = Settings.from_env(
        {
            "PARLEY_SEARCH_ENGINE": "opensearch",
            "PARLEY_SEARCH_PATH": "/x/search.sqlite3",
            "PARLEY_SEARCH_ENDPOINT": "https://e",
            "PARLEY_SEARCH_REGION": "eu-west-1",
            "PARLEY_SEARCH_INDEX_PREFIX": "p",
            "PARLEY_SEARCH_DIMENSION": "256",
        }
    )
    assert (s.search_engine, s.search_path, s.search_endpoint, s.search_region) == (
        "opensearch",
        "/x/search.sqlite3",
        "https://e",
        "eu-west-1",
    )
    assert (s.search_index_prefix, s.search_dimension) == ("p", 256)
