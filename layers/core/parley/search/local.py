"""The local search engine (`make serve` and the tests): SQLite FTS5 for BM25, highlights and
phrase queries, numpy brute-force cosine k-NN over float32 vectors kept as BLOBs in the same file.

Why not tantivy (which DESIGN.md first named): the local server runs each function in its own
worker *process*, and the stream consumers (the message indexer among them) run in those same
processes. tantivy's IndexWriter holds an exclusive lock per index directory, so a route ingesting
documents and a consumer indexing messages would contend for it across processes. SQLite gives
multi-process transactions (WAL journal, a busy timeout), an atomic replace of a document's chunks
(one `BEGIN IMMEDIATE` transaction), `bm25()`, `snippet()` and phrase queries, all in the standard
library: no new native dependency. numpy (the dev extra) is imported only when a query needs it.

One database file, given to the constructor (the local server passes `<data dir>/search.sqlite3`
through PARLEY_SEARCH_PATH; tests pass a temporary path). Each thread of each process opens its own
connection (a fork opens afresh). Writers take `BEGIN IMMEDIATE`; readers never block writers.

Knowledge chunks: a query takes a BM25 candidate list (`max(50, 4 * top_k)` best, in the project,
the index and the metadata filter) and a k-NN candidate list (the same number by cosine, same
filter), fuses them with `fuse` (reciprocal rank fusion, normalised to (0, 1]), then applies
`min_score` and `top_k`. Text with no searchable term (empty, punctuation, only stopwords) is a
k-NN-only query, and an empty or zero vector a BM25-only one, so the single list normalises to 1.
The vector matrix of each (project, index) is cached in the process and invalidated by a
generation counter that every write to the index bumps in the same transaction (one row read per
query), so writes from other processes are seen at once.

User text never reaches FTS5's query syntax: it is split into word tokens (`\\w+`) and each token
is quoted (`"token"`), so `"`, `*`, `-`, `:`, `^`, `NEAR`, `AND`, `OR`, `NOT` and column filters are
plain words or nothing. BM25 statistics (IDF) are the whole file's, across projects: ranking only,
never the membership of a result, which always filters on the project.

Messages: BM25 over the content (any term matches, like OpenSearch's `match`), filtered on the
project and optionally the user and the conversation. A message holding the query's exact phrase
ranks above every message that only has the words scattered (its score is the BM25 score times
PHRASE_BOOST). Snippets are HTML fragments: the content is HTML-escaped (`<` `>` `&` `"` `'`) and the
matches wrapped in `<mark>...</mark>`, so a client may insert a snippet as HTML without letting a
message's own markup in (the OpenSearch adapter asks for the same with the `html` encoder).
"""

from __future__ import annotations

import html
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley.domain.errors import SearchUnavailable
from parley.search.base import ChunkDoc, ChunkHit, ChunkQuery, MessageDoc, MessageHit, MessagePage, MessageQuery, fuse

__all__ = ["PHRASE_BOOST", "STOPWORDS", "LocalSearchEngine", "candidates", "query_terms"]

SCHEMA_VERSION = 1  # the meta row _SCHEMA writes
PHRASE_BOOST = 4.0
BUSY_TIMEOUT_MS = 15_000
SNIPPET_TOKENS = 24
# placeholders snippet() puts around matches before the content is escaped; the indexed copy of
# the content has them removed, so a message cannot forge a highlight
_OPEN, _CLOSE = "\ue000", "\ue001"
_TOKEN = re.compile(r"\w+", re.UNICODE)
# English function words: a chunk query made only of these has no useful BM25 list
STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "a an and are as at be but by for from has have how i if in into is it its of on or that the their "
        "then there these they this to was we were what when where which who why will with you your",
    )
)
_TRANSIENT = ("locked", "busy", "unable to open", "disk i/o", "readonly", "no such table", "malformed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    project_id TEXT NOT NULL, index_id TEXT NOT NULL, document_id TEXT NOT NULL,
    chunk_id TEXT NOT NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, heading TEXT, metadata TEXT NOT NULL,
    vector BLOB NOT NULL,
    UNIQUE (project_id, index_id, chunk_id)
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (project_id, index_id, document_id);
CREATE TABLE IF NOT EXISTS chunk_meta (
    chunk INTEGER NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (chunk, key)
);
CREATE INDEX IF NOT EXISTS chunk_meta_by_pair ON chunk_meta (key, value);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, tokenize='porter unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS generations (
    project_id TEXT NOT NULL, index_id TEXT NOT NULL, generation INTEGER NOT NULL,
    PRIMARY KEY (project_id, index_id)
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    project_id TEXT NOT NULL, conversation_id TEXT NOT NULL, message_id TEXT NOT NULL,
    user_id TEXT, role TEXT NOT NULL, content TEXT NOT NULL, created_at TEXT NOT NULL,
    UNIQUE (project_id, conversation_id, message_id)
);
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(content, tokenize='porter unicode61 remove_diacritics 2');
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
"""


def query_terms(text: str, *, drop_stopwords: bool) -> list[str]:
    """The query's word tokens, lowercased, first occurrence order, no duplicates."""
    seen: dict[str, None] = {}
    for token in _TOKEN.findall(text.lower()):
        if drop_stopwords and token in STOPWORDS:
            continue
        seen.setdefault(token, None)
    return list(seen)


def _any_of(terms: Sequence[str]) -> str:
    return " OR ".join(f'"{t}"' for t in terms)


def _phrase(text: str) -> str:
    return '"' + " ".join(_TOKEN.findall(text.lower())) + '"'


def candidates(top_k: int) -> int:
    """How many candidates each list of a hybrid query takes."""
    return max(50, 4 * top_k)


@dataclass(frozen=True)
class _Matrix:
    generation: int
    ids: Any  # numpy int64 array of chunk row ids
    vectors: Any  # numpy float32 (n, dim), rows normalised (zero rows stay zero)


class LocalSearchEngine:
    """The SearchEngine port on one SQLite file (see the module docstring)."""

    fixed_dimension: int | None = None  # each knowledge index keeps its own vectors

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._cache: dict[tuple[str, str], _Matrix] = {}
        self._cache_lock = threading.Lock()
        self._init_lock = threading.Lock()
        self._initialised = False

    # connections -----------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            with self._init_lock:  # one set-up per process at a time; other processes wait on the busy timeout
                conn.execute("PRAGMA journal_mode = WAL")
                if not self._initialised:
                    conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
                    self._initialised = True
        except (sqlite3.OperationalError, OSError) as exc:
            raise SearchUnavailable(f"the local search database {self.path} cannot be opened: {exc}") from exc
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with _mapped():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with _mapped():
            yield conn

    def close(self) -> None:
        """Close this thread's connection (others close when their thread's storage goes)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # knowledge chunks ------------------------------------------------------------------------
    def put_chunks(self, project_id: str, index_id: str, document_id: str, chunks: Sequence[ChunkDoc]) -> None:
        for chunk in chunks:
            if (chunk.project_id, chunk.index_id, chunk.document_id) != (project_id, index_id, document_id):
                raise ValueError(f"chunk {chunk.chunk_id} belongs to another project, index or document")
        rows = [(chunk, _vector_blob(chunk.vector)) for chunk in chunks]
        with self._write() as conn:
            self._delete_chunks(
                conn, "project_id = ? AND index_id = ? AND document_id = ?", (project_id, index_id, document_id)
            )
            for chunk, blob in rows:
                cursor = conn.execute(
                    'INSERT INTO chunks (project_id, index_id, document_id, chunk_id, ordinal, text, start, "end", '
                    "heading, metadata, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        project_id,
                        index_id,
                        document_id,
                        chunk.chunk_id,
                        chunk.ordinal,
                        chunk.text,
                        chunk.start,
                        chunk.end,
                        chunk.heading,
                        json.dumps(dict(chunk.metadata)),
                        blob,
                    ),
                )
                rowid = cursor.lastrowid
                conn.execute("INSERT INTO chunks_fts (rowid, text) VALUES (?, ?)", (rowid, chunk.text))
                conn.executemany(
                    "INSERT INTO chunk_meta (chunk, key, value) VALUES (?, ?, ?)",
                    [(rowid, key, _meta_value(value)) for key, value in chunk.metadata.items()],
                )
            self._bump(conn, project_id, index_id)

    def delete_document(self, project_id: str, index_id: str, document_id: str) -> None:
        with self._write() as conn:
            self._delete_chunks(
                conn, "project_id = ? AND index_id = ? AND document_id = ?", (project_id, index_id, document_id)
            )
            self._bump(conn, project_id, index_id)

    def delete_index(self, project_id: str, index_id: str) -> None:
        with self._write() as conn:
            self._delete_chunks(conn, "project_id = ? AND index_id = ?", (project_id, index_id))
            self._bump(conn, project_id, index_id)

    @staticmethod
    def _delete_chunks(conn: sqlite3.Connection, where: str, params: tuple[str, ...]) -> None:
        conn.execute(f"DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE {where})", params)  # noqa: S608
        conn.execute(f"DELETE FROM chunks WHERE {where}", params)  # noqa: S608  (chunk_meta cascades)

    @staticmethod
    def _bump(conn: sqlite3.Connection, project_id: str, index_id: str) -> None:
        conn.execute(
            "INSERT INTO generations (project_id, index_id, generation) VALUES (?, ?, 1) "
            "ON CONFLICT (project_id, index_id) DO UPDATE SET generation = generation + 1",
            (project_id, index_id),
        )

    def query_chunks(self, query: ChunkQuery) -> Sequence[ChunkHit]:
        if query.top_k < 1:
            return []
        n = candidates(query.top_k)
        terms = query_terms(query.text, drop_stopwords=True)
        has_vector = len(query.vector) > 0 and any(x != 0 for x in query.vector)
        filter_sql, filter_params = _filter_clause(query.filter)
        with self._read() as conn:
            rankings: list[list[int]] = []
            if terms:
                rows = conn.execute(
                    "SELECT c.id FROM chunks_fts f JOIN chunks c ON c.id = f.rowid "  # noqa: S608
                    f"WHERE chunks_fts MATCH ? AND c.project_id = ? AND c.index_id = ?{filter_sql} "
                    "ORDER BY bm25(chunks_fts), c.id LIMIT ?",
                    (_any_of(terms), query.project_id, query.index_id, *filter_params, n),
                ).fetchall()
                rankings.append([r[0] for r in rows])
            if has_vector:
                rankings.append(self._knn(conn, query, n, filter_sql, filter_params))
            fused = [(int(i), s) for i, s in fuse([[str(i) for i in r] for r in rankings])]
            kept = [(i, s) for i, s in fused if s >= query.min_score][: query.top_k]
            if not kept:
                return []
            marks = ",".join("?" * len(kept))
            found = {
                row[0]: row
                for row in conn.execute(
                    'SELECT id, document_id, chunk_id, ordinal, text, start, "end", heading, metadata '  # noqa: S608
                    f"FROM chunks WHERE id IN ({marks})",
                    [i for i, _ in kept],
                )
            }
        hits = []
        for rowid, score in kept:
            row = found.get(rowid)
            if row is None:  # deleted between the two reads of this query
                continue
            hits.append(
                ChunkHit(
                    document_id=row[1],
                    chunk_id=row[2],
                    ordinal=row[3],
                    text=row[4],
                    start=row[5],
                    end=row[6],
                    score=score,
                    heading=row[7],
                    metadata=json.loads(row[8]),
                )
            )
        return hits

    def _knn(
        self, conn: sqlite3.Connection, query: ChunkQuery, n: int, filter_sql: str, filter_params: list[str]
    ) -> list[int]:
        import numpy as np  # noqa: PLC0415  (local only: the dev extra)

        matrix = self._matrix(conn, query.project_id, query.index_id)
        if matrix.ids.size == 0:
            return []
        q = np.asarray(query.vector, dtype=np.float32)
        if q.shape[0] != matrix.vectors.shape[1]:
            raise ValueError(
                f"the query vector has {q.shape[0]} dimensions, the index's vectors {matrix.vectors.shape[1]}"
            )
        q /= np.linalg.norm(q)
        scores = matrix.vectors @ q
        ids = matrix.ids
        if filter_sql:
            allowed = np.fromiter(
                (
                    r[0]
                    for r in conn.execute(
                        f"SELECT c.id FROM chunks c WHERE c.project_id = ? AND c.index_id = ?{filter_sql}",  # noqa: S608
                        (query.project_id, query.index_id, *filter_params),
                    )
                ),
                dtype=np.int64,
            )
            mask = np.isin(ids, allowed)
            ids, scores = ids[mask], scores[mask]
        if ids.size == 0:
            return []
        take = min(n, ids.size)
        best = np.argpartition(-scores, take - 1)[:take]
        order = best[np.lexsort((ids[best], -scores[best]))]
        return [int(i) for i in ids[order]]

    def _matrix(self, conn: sqlite3.Connection, project_id: str, index_id: str) -> _Matrix:
        import numpy as np  # noqa: PLC0415

        row = conn.execute(
            "SELECT generation FROM generations WHERE project_id = ? AND index_id = ?", (project_id, index_id)
        ).fetchone()
        generation = row[0] if row else 0
        key = (project_id, index_id)
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is not None and cached.generation == generation:
            return cached
        # read the rows and the generation in one snapshot, so the cache is never newer than its label
        conn.execute("BEGIN")
        try:
            row = conn.execute(
                "SELECT generation FROM generations WHERE project_id = ? AND index_id = ?", (project_id, index_id)
            ).fetchone()
            generation = row[0] if row else 0
            rows = conn.execute(
                "SELECT id, vector FROM chunks WHERE project_id = ? AND index_id = ? ORDER BY id",
                (project_id, index_id),
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        vectors = _normalised(np, [r[1] for r in rows])
        matrix = _Matrix(generation, ids, vectors)
        with self._cache_lock:
            self._cache[key] = matrix
        return matrix

    # messages --------------------------------------------------------------------------------
    def put_messages(self, docs: Sequence[MessageDoc]) -> None:
        if not docs:
            return
        with self._write() as conn:
            for doc in docs:
                self._delete_messages(
                    conn,
                    "project_id = ? AND conversation_id = ? AND message_id = ?",
                    (doc.project_id, doc.conversation_id, doc.message_id),
                )
                cursor = conn.execute(
                    "INSERT INTO messages (project_id, conversation_id, message_id, user_id, role, content, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        doc.project_id,
                        doc.conversation_id,
                        doc.message_id,
                        doc.user_id,
                        doc.role,
                        doc.content,
                        doc.created_at,
                    ),
                )
                indexed = doc.content.replace(_OPEN, " ").replace(_CLOSE, " ")
                conn.execute("INSERT INTO messages_fts (rowid, content) VALUES (?, ?)", (cursor.lastrowid, indexed))

    def delete_messages(self, project_id: str, conversation_id: str, message_ids: Sequence[str]) -> None:
        if not message_ids:
            return
        with self._write() as conn:
            for message_id in message_ids:
                self._delete_messages(
                    conn,
                    "project_id = ? AND conversation_id = ? AND message_id = ?",
                    (project_id, conversation_id, message_id),
                )

    def delete_conversation(self, project_id: str, conversation_id: str) -> None:
        with self._write() as conn:
            self._delete_messages(conn, "project_id = ? AND conversation_id = ?", (project_id, conversation_id))

    @staticmethod
    def _delete_messages(conn: sqlite3.Connection, where: str, params: tuple[str, ...]) -> None:
        conn.execute(f"DELETE FROM messages_fts WHERE rowid IN (SELECT id FROM messages WHERE {where})", params)  # noqa: S608
        conn.execute(f"DELETE FROM messages WHERE {where}", params)  # noqa: S608

    def search_messages(self, query: MessageQuery) -> MessagePage:
        terms = query_terms(query.q, drop_stopwords=False)
        if not terms or query.limit < 1:
            return MessagePage(hits=[], more=False)
        where = ["messages_fts MATCH ?", "m.project_id = ?"]
        params: list[object] = [_any_of(terms), query.project_id]
        if query.user_id is not None:
            where.append("m.user_id = ?")
            params.append(query.user_id)
        if query.conversation_id is not None:
            where.append("m.conversation_id = ?")
            params.append(query.conversation_id)
        sql = (
            "SELECT m.conversation_id, m.message_id, m.role, m.created_at, m.user_id, "  # noqa: S608
            f"snippet(messages_fts, 0, '{_OPEN}', '{_CLOSE}', '…', {SNIPPET_TOKENS}) AS snip, "
            "-bm25(messages_fts) AS relevance, "
            "(f.rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)) AS phrase "
            "FROM messages_fts f JOIN messages m ON m.id = f.rowid "
            f"WHERE {' AND '.join(where)} "
            "ORDER BY phrase DESC, relevance DESC, m.created_at DESC, m.id DESC LIMIT ? OFFSET ?"
        )
        with self._read() as conn:
            rows = conn.execute(sql, [_phrase(query.q), *params, query.limit + 1, max(query.offset, 0)]).fetchall()
        hits = [
            MessageHit(
                conversation_id=r[0],
                message_id=r[1],
                role=r[2],
                created_at=r[3],
                user_id=r[4],
                snippet=_marked(r[5]),
                score=float(r[6]) * (PHRASE_BOOST if r[7] else 1.0),
            )
            for r in rows[: query.limit]
        ]
        return MessagePage(hits=hits, more=len(rows) > query.limit)


def _marked(raw: str) -> str:
    return html.escape(raw).replace(_OPEN, "<mark>").replace(_CLOSE, "</mark>")


def _meta_value(value: object) -> str:
    # typed: True, 1 and "1" are three different values
    return json.dumps(value)


def _filter_clause(pairs: Mapping[str, object]) -> tuple[str, list[str]]:
    sql, params = "", []
    for key, value in pairs.items():
        sql += " AND EXISTS (SELECT 1 FROM chunk_meta cm WHERE cm.chunk = c.id AND cm.key = ? AND cm.value = ?)"
        params += [key, _meta_value(value)]
    return sql, params


def _vector_blob(vector: Sequence[float]) -> bytes:
    import numpy as np  # noqa: PLC0415

    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
        raise ValueError("a chunk's vector must be a non-empty sequence of finite numbers")
    return array.tobytes()


def _normalised(np: Any, blobs: list[bytes]) -> Any:
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    dims = {len(b) for b in blobs}
    if len(dims) != 1:
        raise ValueError("the index holds vectors of different dimensions")
    matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1).copy()
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


@contextmanager
def _mapped() -> Iterator[None]:
    """SQLite failures that are the engine's state (locked past the busy timeout, the file gone or
    unwritable) answer SearchUnavailable; anything else is a bug and propagates."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if any(word in str(exc).lower() for word in _TRANSIENT):
            raise SearchUnavailable(f"the local search engine is unavailable: {exc}") from exc
        raise
