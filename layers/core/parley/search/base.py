"""The search port. Services speak only this; adapters store and query.

Two collections live behind one engine:
- knowledge chunks of an index's documents (RAG): hybrid retrieval, BM25 over the text plus
  k-NN over the chunk's embedding, fused by reciprocal rank fusion (`fuse`), the same function
  in every adapter, so both rank alike for the same candidate lists;
- conversation messages (full-text search): BM25, an exact phrase ranked above scattered words,
  with highlighted snippets.

Every call names the project, and every query filters on it: nothing crosses tenants.
Adapters raise parley.domain.errors.SearchUnavailable (503) when the engine cannot be reached
or refuses a request, never a transport exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

Scalar = str | int | float | bool
# reciprocal rank fusion's constant (Cormack et al. 2009; OpenSearch's score-ranker default)
RRF_K = 60


@dataclass(frozen=True)
class ChunkDoc:
    """One chunk of a document in a knowledge index, as stored."""

    project_id: str
    index_id: str
    document_id: str
    chunk_id: str  # unique within the index: f"{document_id}#{ordinal}"
    ordinal: int  # position of the chunk in its document, from 0
    text: str
    start: int  # the chunk's span in the document's text (character offsets, end exclusive)
    end: int
    vector: Sequence[float]
    heading: str | None = None  # the markdown heading path the chunk sits under ("Billing > Refunds")
    metadata: Mapping[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkHit:
    document_id: str
    chunk_id: str
    ordinal: int
    text: str
    start: int
    end: int
    score: float  # the fused score, normalised to (0, 1]: 1 is rank 1 in both lists
    heading: str | None = None
    metadata: Mapping[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkQuery:
    project_id: str
    index_id: str
    text: str
    vector: Sequence[float]
    top_k: int = 5
    min_score: float = 0.0
    # exact matches on metadata keys (every pair must match)
    filter: Mapping[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageDoc:
    """One visible message of a conversation, as indexed for search (never hidden context or a
    summary: the indexer does not send those)."""

    project_id: str
    conversation_id: str
    message_id: str
    role: str
    content: str
    created_at: str  # ISO 8601, UTC
    user_id: str | None = None


@dataclass(frozen=True)
class MessageHit:
    conversation_id: str
    message_id: str
    role: str
    created_at: str
    # a window of the content around the matches, as an HTML fragment: the content's own markup
    # escaped (&lt; &gt; &amp; &quot; &#x27;), the matches wrapped in <mark>...</mark>
    snippet: str
    score: float
    user_id: str | None = None


@dataclass(frozen=True)
class MessageQuery:
    project_id: str
    q: str
    user_id: str | None = None
    conversation_id: str | None = None
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True)
class MessagePage:
    hits: Sequence[MessageHit]
    more: bool  # another page exists after offset + len(hits)


class SearchEngine(Protocol):
    # The one vector dimension the engine stores (OpenSearch: its chunks index's knn_vector
    # mapping), or None when every knowledge index may have its own (the local engine).
    fixed_dimension: int | None

    # knowledge chunks
    def put_chunks(self, project_id: str, index_id: str, document_id: str, chunks: Sequence[ChunkDoc]) -> None:
        """Replace the document's chunks with these (none: the document has no chunks)."""
        ...

    def delete_document(self, project_id: str, index_id: str, document_id: str) -> None: ...

    def delete_index(self, project_id: str, index_id: str) -> None: ...

    def query_chunks(self, query: ChunkQuery) -> Sequence[ChunkHit]:
        """The best `top_k` chunks of the index by fused score, each at least `min_score`."""
        ...

    # messages
    def put_messages(self, docs: Sequence[MessageDoc]) -> None:
        """Add or replace messages (by project, conversation and message id)."""
        ...

    def delete_messages(self, project_id: str, conversation_id: str, message_ids: Sequence[str]) -> None: ...

    def delete_conversation(self, project_id: str, conversation_id: str) -> None: ...

    def search_messages(self, query: MessageQuery) -> MessagePage: ...


def fuse(rankings: Sequence[Sequence[str]], *, k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: each id scores sum(1 / (k + rank)) over the lists it appears in
    (rank from 1), normalised by the best possible score (rank 1 in every list), so a score is in
    (0, 1]. Ties keep the order of first appearance. Best first."""
    if not rankings:
        return []
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    best = len(rankings) / (k + 1)
    return sorted(((item, score / best) for item, score in scores.items()), key=lambda pair: -pair[1])
