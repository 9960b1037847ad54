"""Knowledge indexes (issue 16): named collections of documents, chunked and embedded, that
model calls retrieve from (RAG).

An index fixes its embedding model (and its vectors' dimension) at creation: every chunk of it
is embedded by that model, and a query is embedded by it too. Its chunking settings apply to
documents added after they change.

A document of an index is either a stored document (`document_id`, doc_...) or inline text with
an id the caller may choose (`id`), so that adding the same id again replaces the document's
chunks (nothing is done when its text and metadata did not change). Its status is `processing`
until its chunks are searchable, then `ready`; `failed` carries the reason. Small documents are
ingested within the request; larger ones by the ingestion worker (a queue), so the add answers
`processing` at once.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from parley.domain.chunking import ChunkingSettings
from parley.domain.records import ProjectRecord

DocumentStatus = Literal["processing", "ready", "failed"]
Source = Literal["document", "inline"]
MetadataValue = str | int | float | bool
MAX_METADATA_KEYS = 16
MAX_INLINE_BYTES = 512 * 1024  # as a stored document
# Documents up to this many UTF-8 bytes are ingested in the request; larger ones by the worker.
INLINE_INGEST_BYTES = 16 * 1024
MAX_TOP_K = 50
DEFAULT_TOP_K = 5
DOCUMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
MetadataKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")]
Metadata = dict[MetadataKey, MetadataValue]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


_METADATA = Field(
    default=None,
    max_length=MAX_METADATA_KEYS,
    description="String, number or boolean values, matched exactly by a query's filter",
)


class IndexCreate(_Strict):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={"examples": [{"name": "help-center", "embedding_model": "local"}]},
    )

    name: str = Field(min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=1024)
    embedding_model: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="`local` (the built-in model; the default on the local server), or "
        "`<provider name>/<model>` of a stored openai or bedrock provider; fixed for the index's life",
    )
    dimensions: int | None = Field(default=None, ge=1, le=4096, description="For models that can shorten their vectors")
    chunking: ChunkingSettings | None = None
    metadata: Metadata | None = _METADATA


class IndexUpdate(_Strict):
    """PATCH: only the fields present change (the embedding model cannot: re-create the index)."""

    name: str | None = Field(default=None, min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=1024)
    chunking: ChunkingSettings | None = None
    metadata: Metadata | None = _METADATA


class IndexCounts(BaseModel):
    documents: int = 0
    processing: int = 0
    ready: int = 0
    failed: int = 0
    chunks: int = 0


class Index(BaseModel):
    id: str
    object: Literal["index"] = "index"
    name: str
    description: str | None = None
    embedding_model: str
    dimensions: int | None = None
    chunking: ChunkingSettings
    metadata: Metadata | None = None
    counts: IndexCounts
    created_at: str
    updated_at: str


class IndexRecord(ProjectRecord):
    name: str
    description: str | None = None
    embedding_model: str
    dimensions: int | None = None
    chunking: ChunkingSettings
    metadata: Metadata | None = None
    created_at: str
    updated_at: str
    deleting_at: str | None = None  # a delete began (it is resumable: a retry finishes it)
    version: int = 1
    # counters, kept by atomic updates as documents change status
    documents: int = 0
    processing: int = 0
    ready: int = 0
    failed: int = 0
    chunks: int = 0

    def view(self) -> Index:
        return Index(
            id=self.id,
            name=self.name,
            description=self.description,
            embedding_model=self.embedding_model,
            dimensions=self.dimensions,
            chunking=self.chunking,
            metadata=self.metadata,
            counts=IndexCounts(
                documents=max(0, self.documents),
                processing=max(0, self.processing),
                ready=max(0, self.ready),
                failed=max(0, self.failed),
                chunks=max(0, self.chunks),
            ),
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class IndexDocumentAdd(_Strict):
    """Add a document to the index: a stored one (`document_id`), or inline `text`. Adding an id
    the index holds replaces that document (its chunks are rebuilt when its text or metadata
    changed)."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"id": "refunds", "text": "# Refunds\n\nRefunds within 30 days.", "media_type": "text/markdown"},
                {"document_id": "doc_01JC0000000000000000000000"},
            ]
        },
    )

    document_id: str | None = Field(default=None, description="A stored document (doc_...)")
    id: str | None = Field(
        default=None, pattern=DOCUMENT_ID_PATTERN, description="For inline text: the document's id in the index"
    )
    text: str | None = Field(default=None, description="Inline text (at most 512 KiB of UTF-8)")
    name: str | None = Field(default=None, min_length=1, max_length=256)
    media_type: Literal["text/plain", "text/markdown"] | None = None
    metadata: Metadata | None = _METADATA

    @model_validator(mode="after")
    def _one_source(self) -> IndexDocumentAdd:
        if (self.document_id is None) == (self.text is None):
            raise ValueError("give exactly one of document_id and text")
        if self.document_id is not None and self.id is not None:
            raise ValueError("id is for inline text; a stored document keeps its document_id")
        return self


class DocumentError(BaseModel):
    code: str
    message: str


class IndexDocument(BaseModel):
    id: str
    object: Literal["index.document"] = "index.document"
    index_id: str
    source: Source
    name: str | None = None
    media_type: str
    metadata: Metadata | None = None
    status: DocumentStatus
    error: DocumentError | None = Field(default=None, exclude_if=lambda value: value is None)
    chunks: int = 0
    size_bytes: int
    created_at: str
    updated_at: str


class IndexDocumentRecord(ProjectRecord):
    """sk = the document's id within its index; its text is in the documents bucket at
    `object_key` (a stored document's own object, or the inline text Parley stored)."""

    index_id: str
    source: Source
    name: str | None = None
    media_type: str
    metadata: Metadata | None = None
    status: DocumentStatus
    error: DocumentError | None = None
    chunks: int = 0
    size_bytes: int
    content_sha256: str  # of the text and the metadata: an unchanged re-add does nothing
    object_key: str
    created_at: str
    updated_at: str
    version: int = 1  # each add increments it; the worker ingests only the version it was sent

    def view(self) -> IndexDocument:
        return IndexDocument(
            id=self.id,
            index_id=self.index_id,
            source=self.source,
            name=self.name,
            media_type=self.media_type,
            metadata=self.metadata,
            status=self.status,
            error=self.error,
            chunks=self.chunks,
            size_bytes=self.size_bytes,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class RagOptions(_Strict):
    top_k: int = Field(default=DEFAULT_TOP_K, ge=1, le=MAX_TOP_K)
    min_score: float = Field(default=0.0, ge=0.0, le=1.0, description="Fused score, in (0, 1]")
    filter: Metadata | None = Field(default=None, max_length=MAX_METADATA_KEYS, description="Exact metadata matches")


class IndexQuery(RagOptions):
    query: str = Field(min_length=1, max_length=8192)


class Citation(BaseModel):
    """A retrieved chunk the model was given: where it comes from and how well it matched."""

    index_id: str
    document_id: str
    chunk_id: str
    score: float
    start: int = Field(description="The chunk's span in its document's text (characters, end exclusive)")
    end: int
    text: str
    heading: str | None = Field(default=None, exclude_if=lambda value: value is None)
    metadata: Metadata | None = Field(default=None, exclude_if=lambda value: value is None)


class IndexQueryResult(BaseModel):
    object: Literal["list"] = "list"
    data: list[Citation]


class MessageSearchHit(BaseModel):
    """A message that matched a search: where it is, its snippet with the matches in
    <mark>...</mark>, and its BM25 score (higher is better; comparable within one search only)."""

    object: Literal["search.message"] = "search.message"
    conversation_id: str
    message_id: str
    role: str
    user_id: str | None = None
    snippet: str
    score: float
    created_at: str
