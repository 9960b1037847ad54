"""The OpenSearch Serverless (AOSS) adapter of the search port, with opensearch-py and SigV4
(`AWSV4SignerAuth(credentials, region, "aoss")`). opensearch-py is imported when the client is
first built, never at import time; the client is injectable (tests pass one aimed at a fake server).

Two OpenSearch indexes, named from a prefix: `<prefix>-chunks` (knowledge chunks, with a
`knn_vector` field of the configured dimension) and `<prefix>-messages`. `ensure_indexes()` creates
whichever is missing (HEAD, then PUT with the mapping); writes call it once per process.

What AOSS allows, and how this adapter fits it (AWS, "Supported operations and plugins in Amazon
OpenSearch Serverless", serverless-genref; "Configure Neural Search and Hybrid Search on
OpenSearch Serverless", serverless-configure-neural-search):
- *No custom document ids on vector search collections.* `POST <index>/_create/<id>` and upserts by
  id are listed "for search collection types only", and vector (and time series) collections
  assign their own `_id` (the AWS migration guide: "VECTORSEARCH: server-generated IDs"). So no
  write names an `_id`. Each stored entry carries its own unique `entry_id` (a random UUID, a
  keyword); to replace or delete, the adapter first finds the `_id`s of the entries a filter selects
  (a `_search` with `"_source": false`, sorted on `entry_id`, paged with `search_after`), then sends
  one `_bulk` of `delete` actions by those server-assigned ids together with the new `index`
  actions (which name only `_index`). The same path serves a search collection, so the messages
  index may live in either type.
- *No `_delete_by_query`.* It is not in AOSS's list of supported operations (opensearch-java#1112:
  AOSS answers 404 to it), hence the find-then-bulk-delete above.
- *No `refresh`.* AOSS refreshes on its own schedule; a write is searchable after a short delay
  (seconds), so a replace issued before the previous write is visible can miss entries it should
  delete. Callers that need it re-run `put_chunks` (idempotent by construction).
- *Hybrid search pipelines.* AOSS supports the `normalization-processor` (min_max or l2, then an
  arithmetic, geometric or harmonic mean), not the `score-ranker-processor` (RRF). The port's
  contract is reciprocal rank fusion, identical in every adapter, so this adapter sends the BM25
  `match` query and the `knn` query in one `_msearch` and fuses the two ranked lists client-side
  with `parley.search.base.fuse`.
- *Vectors.* faiss HNSW with efficient filtering (the `filter` inside the `knn` clause, faiss 2.9+),
  so the tenant filter is applied during the graph search and `k` results come back even for a
  small project. The vectors are normalised before they are stored and queried and the space is
  `innerproduct`: on unit vectors it orders exactly as cosine does, and unlike faiss's
  `cosinesimil` (OpenSearch 2.19+) it is available on every faiss version AOSS has run.

Every query (BM25, k-NN, id scans, message search) carries a `bool.filter` of `term`s on
`project_id` (and `index_id` for chunks): nothing crosses tenants. Metadata filters are exact:
each pair is stored as a `metadata_pairs` keyword `key=<JSON of the value>` (so `1`, `"1"` and
`true` differ, and no dynamic mapping grows per key); the metadata itself is kept unindexed.

Message search: `bool` with `must` a `match` on `content` (any term), `should` a `match_phrase`
with boost PHRASE_BOOST (an exact phrase ranks above scattered words), the tenant, user and
conversation `term` filters; `from`/`size` paging (one more than asked, for `more`); `highlight`
with the `html` encoder and `<mark>` tags, so the snippet is an HTML fragment with the message's
own markup escaped, the same as the local engine's.

Errors: a connection failure, a timeout, 429, 5xx, or a refused signature (401/403) raise
SearchUnavailable; a 400 means this adapter sent a bad request, which is a bug: it propagates.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from parley.domain.errors import SearchUnavailable
from parley.search.base import ChunkDoc, ChunkHit, ChunkQuery, MessageDoc, MessageHit, MessagePage, MessageQuery, fuse

__all__ = ["PHRASE_BOOST", "OpenSearchEngine", "chunk_mapping", "message_mapping"]

PHRASE_BOOST = 4.0
SCAN_PAGE = 1000  # ids fetched per page when finding the entries a write replaces or deletes
SNIPPET_CHARS = 150
CHUNK_SOURCE = ["document_id", "chunk_id", "ordinal", "text", "start", "end", "heading", "metadata"]
MESSAGE_SOURCE = ["conversation_id", "message_id", "role", "created_at", "user_id"]


def chunk_mapping(dimension: int) -> dict[str, Any]:
    return {
        "settings": {"index": {"knn": True}},
        "mappings": {
            "properties": {
                "entry_id": {"type": "keyword"},
                "project_id": {"type": "keyword"},
                "index_id": {"type": "keyword"},
                "document_id": {"type": "keyword"},
                "chunk_id": {"type": "keyword"},
                "ordinal": {"type": "integer"},
                "text": {"type": "text", "analyzer": "english"},
                "start": {"type": "integer"},
                "end": {"type": "integer"},
                "heading": {"type": "text", "analyzer": "english"},
                "metadata": {"type": "object", "enabled": False},
                "metadata_pairs": {"type": "keyword"},
                "vector": {
                    "type": "knn_vector",
                    "dimension": dimension,
                    "method": {"name": "hnsw", "engine": "faiss", "space_type": "innerproduct"},
                },
            }
        },
    }


def message_mapping() -> dict[str, Any]:
    return {
        "mappings": {
            "properties": {
                "entry_id": {"type": "keyword"},
                "project_id": {"type": "keyword"},
                "conversation_id": {"type": "keyword"},
                "message_id": {"type": "keyword"},
                "user_id": {"type": "keyword"},
                "role": {"type": "keyword"},
                "content": {"type": "text", "analyzer": "english"},
                "created_at": {"type": "date"},
            }
        }
    }


def _term(field: str, value: str) -> dict[str, Any]:
    return {"term": {field: value}}


def metadata_pair(key: str, value: object) -> str:
    return f"{key}={json.dumps(value)}"


def _unit(vector: Sequence[float]) -> list[float]:
    values = [float(x) for x in vector]
    if not values or not all(math.isfinite(x) for x in values):
        raise ValueError("a vector must be a non-empty sequence of finite numbers")
    norm = math.sqrt(sum(x * x for x in values))
    return values if norm == 0 else [x / norm for x in values]


class OpenSearchEngine:
    """The SearchEngine port on an OpenSearch Serverless collection (see the module docstring)."""

    def __init__(
        self,
        endpoint: str,
        region: str,
        *,
        index_prefix: str = "parley",
        dimension: int,
        client: Any = None,
        credentials: Any = None,
        timeout: float = 10.0,
    ) -> None:
        if dimension < 1:
            raise ValueError("dimension must be positive")
        self.endpoint = endpoint
        self.region = region
        self.chunks_index = f"{index_prefix}-chunks"
        self.messages_index = f"{index_prefix}-messages"
        self.dimension = dimension
        self.fixed_dimension: int | None = dimension
        self.timeout = timeout
        self._client = client
        self._credentials = credentials
        self._ensured = False

    # the client -----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = build_client(self.endpoint, self.region, credentials=self._credentials, timeout=self.timeout)
        return self._client

    def ensure_indexes(self) -> None:
        with _mapped():
            for name, body in (
                (self.chunks_index, chunk_mapping(self.dimension)),
                (self.messages_index, message_mapping()),
            ):
                if not self.client.indices.exists(index=name):
                    try:
                        self.client.indices.create(index=name, body=body)
                    except Exception as exc:  # another writer created it first
                        if _error_type(exc) != "resource_already_exists_exception":
                            raise
        self._ensured = True

    def _ready(self) -> None:
        if not self._ensured:
            self.ensure_indexes()

    # knowledge chunks ------------------------------------------------------------------------
    def put_chunks(self, project_id: str, index_id: str, document_id: str, chunks: Sequence[ChunkDoc]) -> None:
        sources = []
        for chunk in chunks:
            if (chunk.project_id, chunk.index_id, chunk.document_id) != (project_id, index_id, document_id):
                raise ValueError(f"chunk {chunk.chunk_id} belongs to another project, index or document")
            if len(chunk.vector) != self.dimension:
                raise ValueError(
                    f"chunk {chunk.chunk_id} has {len(chunk.vector)} dimensions, the index {self.dimension}"
                )
            sources.append(self._chunk_source(chunk))
        self._ready()
        stale = self._scan(self.chunks_index, self._document_filter(project_id, index_id, document_id))
        self._bulk(self.chunks_index, stale, sources)

    def delete_document(self, project_id: str, index_id: str, document_id: str) -> None:
        self._ready()
        stale = self._scan(self.chunks_index, self._document_filter(project_id, index_id, document_id))
        self._bulk(self.chunks_index, stale, [])

    def delete_index(self, project_id: str, index_id: str) -> None:
        self._ready()
        stale = self._scan(self.chunks_index, [_term("project_id", project_id), _term("index_id", index_id)])
        self._bulk(self.chunks_index, stale, [])

    @staticmethod
    def _document_filter(project_id: str, index_id: str, document_id: str) -> list[dict[str, Any]]:
        return [_term("project_id", project_id), _term("index_id", index_id), _term("document_id", document_id)]

    @staticmethod
    def _chunk_source(chunk: ChunkDoc) -> dict[str, Any]:
        return {
            "entry_id": uuid.uuid4().hex,
            "project_id": chunk.project_id,
            "index_id": chunk.index_id,
            "document_id": chunk.document_id,
            "chunk_id": chunk.chunk_id,
            "ordinal": chunk.ordinal,
            "text": chunk.text,
            "start": chunk.start,
            "end": chunk.end,
            "heading": chunk.heading,
            "metadata": dict(chunk.metadata),
            "metadata_pairs": [metadata_pair(k, v) for k, v in chunk.metadata.items()],
            "vector": _unit(chunk.vector),
        }

    def chunk_queries(self, query: ChunkQuery) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The BM25 and k-NN request bodies of a chunk query (None: that list is not needed)."""
        from parley.search.local import candidates, query_terms  # noqa: PLC0415  (pure functions)

        n = candidates(query.top_k)
        filters = [_term("project_id", query.project_id), _term("index_id", query.index_id)]
        filters += [_term("metadata_pairs", metadata_pair(k, v)) for k, v in query.filter.items()]
        terms = query_terms(query.text, drop_stopwords=True)
        bm25 = None
        if terms:
            bm25 = {
                "size": n,
                "_source": CHUNK_SOURCE,
                "query": {"bool": {"must": [{"match": {"text": {"query": " ".join(terms)}}}], "filter": filters}},
            }
        knn = None
        if query.vector and any(x != 0 for x in query.vector):
            if len(query.vector) != self.dimension:
                raise ValueError(f"the query vector has {len(query.vector)} dimensions, the index {self.dimension}")
            knn = {
                "size": n,
                "_source": CHUNK_SOURCE,
                "query": {
                    "knn": {"vector": {"vector": _unit(query.vector), "k": n, "filter": {"bool": {"filter": filters}}}}
                },
            }
        return bm25, knn

    def query_chunks(self, query: ChunkQuery) -> Sequence[ChunkHit]:
        if query.top_k < 1:
            return []
        bodies = [b for b in self.chunk_queries(query) if b is not None]
        if not bodies:
            return []
        lines: list[dict[str, Any]] = []
        for body in bodies:
            lines += [{"index": self.chunks_index}, body]
        with _mapped():
            response = self.client.msearch(body=lines)
        rankings: list[list[str]] = []
        sources: dict[str, dict[str, Any]] = {}
        for item in response["responses"]:
            if "error" in item:
                if _error_type_of(item["error"]) == "index_not_found_exception":
                    rankings.append([])
                    continue
                _raise_item(item.get("status", 500), item["error"])
            ranking = []
            for hit in item["hits"]["hits"]:
                key = hit["_source"]["chunk_id"]
                if key not in sources:
                    sources[key] = hit["_source"]
                    ranking.append(key)
                elif key not in ranking:  # the same chunk twice (a replace not yet visible): rank it once
                    ranking.append(key)
            rankings.append(ranking)
        hits: list[ChunkHit] = []
        for key, score in fuse(rankings):
            if score < query.min_score or len(hits) == query.top_k:
                break
            s = sources[key]
            hits.append(
                ChunkHit(
                    document_id=s["document_id"],
                    chunk_id=s["chunk_id"],
                    ordinal=s["ordinal"],
                    text=s["text"],
                    start=s["start"],
                    end=s["end"],
                    score=score,
                    heading=s.get("heading"),
                    metadata=s.get("metadata") or {},
                )
            )
        return hits

    # messages --------------------------------------------------------------------------------
    def put_messages(self, docs: Sequence[MessageDoc]) -> None:
        if not docs:
            return
        self._ready()
        groups: dict[tuple[str, str], list[str]] = {}
        for doc in docs:
            groups.setdefault((doc.project_id, doc.conversation_id), []).append(doc.message_id)
        stale: list[str] = []
        for (project_id, conversation_id), message_ids in groups.items():
            stale += self._scan(
                self.messages_index,
                [
                    _term("project_id", project_id),
                    _term("conversation_id", conversation_id),
                    {"terms": {"message_id": sorted(set(message_ids))}},
                ],
            )
        latest = {(d.project_id, d.conversation_id, d.message_id): d for d in docs}  # the last of duplicates wins
        self._bulk(self.messages_index, stale, [self._message_source(d) for d in latest.values()])

    @staticmethod
    def _message_source(doc: MessageDoc) -> dict[str, Any]:
        return {
            "entry_id": uuid.uuid4().hex,
            "project_id": doc.project_id,
            "conversation_id": doc.conversation_id,
            "message_id": doc.message_id,
            "user_id": doc.user_id,
            "role": doc.role,
            "content": doc.content,
            "created_at": doc.created_at,
        }

    def delete_messages(self, project_id: str, conversation_id: str, message_ids: Sequence[str]) -> None:
        if not message_ids:
            return
        self._ready()
        stale = self._scan(
            self.messages_index,
            [
                _term("project_id", project_id),
                _term("conversation_id", conversation_id),
                {"terms": {"message_id": sorted(set(message_ids))}},
            ],
        )
        self._bulk(self.messages_index, stale, [])

    def delete_conversation(self, project_id: str, conversation_id: str) -> None:
        self._ready()
        stale = self._scan(
            self.messages_index, [_term("project_id", project_id), _term("conversation_id", conversation_id)]
        )
        self._bulk(self.messages_index, stale, [])

    def message_query(self, query: MessageQuery) -> dict[str, Any]:
        filters = [_term("project_id", query.project_id)]
        if query.user_id is not None:
            filters.append(_term("user_id", query.user_id))
        if query.conversation_id is not None:
            filters.append(_term("conversation_id", query.conversation_id))
        return {
            "from": max(query.offset, 0),
            "size": query.limit + 1,
            "_source": MESSAGE_SOURCE,
            "query": {
                "bool": {
                    "must": [{"match": {"content": {"query": query.q}}}],
                    "should": [{"match_phrase": {"content": {"query": query.q, "boost": PHRASE_BOOST}}}],
                    "filter": filters,
                }
            },
            "sort": [{"_score": "desc"}, {"created_at": "desc"}, {"entry_id": "asc"}],
            "highlight": {
                "encoder": "html",
                "pre_tags": ["<mark>"],
                "post_tags": ["</mark>"],
                "fields": {"content": {"fragment_size": SNIPPET_CHARS, "number_of_fragments": 1}},
            },
        }

    def search_messages(self, query: MessageQuery) -> MessagePage:
        from parley.search.local import query_terms  # noqa: PLC0415

        if not query_terms(query.q, drop_stopwords=False) or query.limit < 1:
            return MessagePage(hits=[], more=False)
        response = self._search(self.messages_index, self.message_query(query))
        if response is None:  # the index does not exist yet: nothing was ever indexed
            return MessagePage(hits=[], more=False)
        raw = response["hits"]["hits"]
        hits = [
            MessageHit(
                conversation_id=h["_source"]["conversation_id"],
                message_id=h["_source"]["message_id"],
                role=h["_source"]["role"],
                created_at=h["_source"]["created_at"],
                user_id=h["_source"].get("user_id"),
                snippet=(h.get("highlight", {}).get("content") or [""])[0],
                score=float(h.get("_score") or 0.0),
            )
            for h in raw[: query.limit]
        ]
        return MessagePage(hits=hits, more=len(raw) > query.limit)

    def _search(self, index: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """One `_search`; None when the index does not exist (nothing was ever written)."""
        try:
            with _mapped(missing_ok=True):
                response: dict[str, Any] = self.client.search(index=index, body=body)
        except _Missing:
            return None
        return response

    # writes ----------------------------------------------------------------------------------
    def _scan(self, index: str, filters: list[dict[str, Any]]) -> list[str]:
        """The `_id`s of every entry the filters select (server-assigned; see the docstring)."""
        ids: list[str] = []
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "size": SCAN_PAGE,
                "_source": False,
                "query": {"bool": {"filter": filters}},
                "sort": [{"entry_id": "asc"}],
            }
            if after is not None:
                body["search_after"] = after
            response = self._search(index, body)
            if response is None:
                return ids
            page = response["hits"]["hits"]
            ids += [h["_id"] for h in page]
            if len(page) < SCAN_PAGE:
                return ids
            after = page[-1]["sort"]

    def _bulk(self, index: str, stale: Sequence[str], sources: Sequence[Mapping[str, Any]]) -> None:
        lines: list[dict[str, Any]] = [{"delete": {"_index": index, "_id": i}} for i in stale]
        for source in sources:
            lines += [{"index": {"_index": index}}, dict(source)]
        if not lines:
            return
        with _mapped():
            response = self.client.bulk(body=lines)
        if not response.get("errors"):
            return
        for item in response["items"]:
            ((action, result),) = item.items()
            status = int(result.get("status", 200))
            if status < 300 or (action == "delete" and status == 404):
                continue
            _raise_item(status, result.get("error", {}))


def build_client(endpoint: str, region: str, *, credentials: Any = None, timeout: float = 10.0) -> Any:
    """An opensearch-py client for an AOSS endpoint (https://<id>.<region>.aoss.amazonaws.com),
    signing with SigV4 for the `aoss` service. `credentials` default to boto3's chain."""
    from urllib.parse import urlsplit  # noqa: PLC0415

    from opensearchpy import AWSV4SignerAuth, OpenSearch, RequestsHttpConnection  # noqa: PLC0415

    if credentials is None:
        import boto3  # noqa: PLC0415

        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise SearchUnavailable("no AWS credentials to sign OpenSearch Serverless requests with")
    url = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    https = url.scheme == "https"
    return OpenSearch(
        hosts=[{"host": url.hostname, "port": url.port or (443 if https else 80)}],
        http_auth=AWSV4SignerAuth(credentials, region, "aoss"),
        use_ssl=https,
        verify_certs=https,
        connection_class=RequestsHttpConnection,
        timeout=timeout,
        max_retries=2,
        retry_on_timeout=True,
        pool_maxsize=10,
    )


def _error_type_of(error: Any) -> str | None:
    if isinstance(error, Mapping):
        kind = error.get("type")
        if isinstance(kind, str):
            return kind
        root = error.get("root_cause")
        if isinstance(root, list) and root and isinstance(root[0], Mapping):
            value = root[0].get("type")
            return value if isinstance(value, str) else None
    return None


def _error_type(exc: BaseException) -> str | None:
    info = getattr(exc, "info", None)
    if isinstance(info, Mapping):
        return _error_type_of(info.get("error"))
    return None


def _raise_item(status: int, error: Any) -> None:
    if status == 429 or status >= 500:
        raise SearchUnavailable(f"OpenSearch refused part of a request ({status}): {_error_type_of(error) or error}")
    raise RuntimeError(f"OpenSearch rejected a request Parley built ({status}): {error}")


@contextmanager
def _mapped(*, missing_ok: bool = False) -> Iterator[None]:
    """Transport failures and the engine's refusals answer SearchUnavailable; a 400 is our bug and
    propagates; with `missing_ok`, a missing index (404) raises _Missing for the caller."""
    from opensearchpy import exceptions  # noqa: PLC0415

    try:
        yield
    except exceptions.ConnectionError as exc:  # includes timeouts and TLS failures
        raise SearchUnavailable(f"OpenSearch cannot be reached: {exc.__class__.__name__}") from exc
    except exceptions.TransportError as exc:
        status = exc.status_code if isinstance(exc.status_code, int) else 0
        if status == 404 and missing_ok and _error_type(exc) == "index_not_found_exception":
            raise _Missing from exc
        if status in (401, 403, 429) or status >= 500 or status == 0:
            raise SearchUnavailable(f"OpenSearch refused the request ({status or 'no status'})") from exc
        raise


class _Missing(Exception):
    """The index a read named does not exist."""
