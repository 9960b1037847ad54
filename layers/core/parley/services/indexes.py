"""Knowledge indexes: their documents' ingestion (text -> chunks -> embeddings -> the search
engine) and retrieval for model calls (RAG).

Ingestion of a document, in order: its record is stored `processing` (with its text in the
documents bucket), then chunked and embedded, its chunks put in the engine (replacing the
document's previous ones), then its record is finished `ready`, if it is still the version that
was ingested. A document that changed meanwhile is ingested again by whoever changed it; one
deleted meanwhile (or whose index is being deleted) has the chunks just written removed again,
so a late write never brings back what a delete removed.

Small documents (INLINE_INGEST_BYTES) are ingested within the request; larger ones, and small ones
whose embedding model or engine was momentarily unavailable, by the ingestion worker
(`ingest_message`, fed by the ingest queue). The worker retries a transient failure on a backoff
schedule (MAX_INGEST_ATTEMPTS), then stores the document `failed` with the reason: a document
never stays `processing` for good.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from parley.domain.chunking import ChunkingSettings
from parley.domain.clock import iso
from parley.domain.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    ParleyError,
    PayloadTooLarge,
    ProviderError,
    RateLimited,
    SearchUnavailable,
    Unavailable,
)
from parley.domain.ids import has_prefix, new_id
from parley.domain.indexes import (
    INLINE_INGEST_BYTES,
    MAX_INLINE_BYTES,
    Citation,
    DocumentError,
    Index,
    IndexCreate,
    IndexDocument,
    IndexDocumentAdd,
    IndexDocumentRecord,
    IndexRecord,
    IndexUpdate,
    RagOptions,
)
from parley.domain.paging import Pages, Position
from parley.domain.principal import Principal
from parley.providers.embeddings import InputType
from parley.search.base import ChunkDoc, ChunkQuery, SearchEngine
from parley.settings import get_settings
from parley.storage.blobs import BlobStore
from parley.storage.indexes import IndexDocumentRepository, IndexRepository, StaleDocument
from parley.storage.queues import IngestQueue

log = logging.getLogger(__name__)
MAX_INGEST_ATTEMPTS = 6  # the worker's tries of a document whose model or engine is unavailable
INGEST_BACKOFF_SECONDS = (5, 30, 120, 300, 900)
PROBE_TEXT = "dimension probe"
INDEX_PAGES = Pages("indexes", {"after": str})
DOCUMENT_PAGES = Pages("index_documents", {"after": str})
# principals the worker acts as: metering and limits need a project and a key, not permissions
WORKER_PERMISSIONS = ("*",)
# how the embedding calls of ingestion and retrieval are audited and metered
EMBED_ROUTE = "indexes (embeddings)"


@dataclass(frozen=True)
class Piece:
    """A chunk as the chunker makes it (parley.domain.chunking)."""

    ordinal: int
    text: str
    start: int
    end: int
    heading: str | None = None


Embed = Callable[[Principal, str, Sequence[str], str, int | None], list[list[float]]]
Chunk = Callable[[str, str, ChunkingSettings], list[Piece]]


def _embed(
    principal: Principal, model: str, texts: Sequence[str], input_type: str, dimensions: int | None
) -> list[list[float]]:
    from parley.services import embeddings  # noqa: PLC0415
    from parley.services.completions import CallContext  # noqa: PLC0415

    kind: InputType = "query" if input_type == "query" else "document"
    vectors, _, _ = embeddings.embed(
        principal, model, texts, input_type=kind, dimensions=dimensions, context=CallContext(route=EMBED_ROUTE)
    )
    return vectors


def _chunk(text: str, media_type: str, settings: ChunkingSettings) -> list[Piece]:
    from parley.domain.chunking import chunk  # noqa: PLC0415

    pieces = chunk(text, media_type=media_type, max_tokens=settings.max_tokens, overlap_tokens=settings.overlap_tokens)
    return [Piece(c.ordinal, c.text, c.start, c.end, c.heading) for c in pieces]


def _engine() -> SearchEngine:
    from parley.search.factory import engine  # noqa: PLC0415

    return engine()


@dataclass
class Deps:
    indexes: IndexRepository = field(default_factory=IndexRepository)
    documents: IndexDocumentRepository = field(default_factory=IndexDocumentRepository)
    blobs: BlobStore = field(default_factory=BlobStore)
    queue: IngestQueue = field(default_factory=IngestQueue)
    engine: Callable[[], SearchEngine] = _engine
    embed: Embed = _embed
    chunk: Chunk = _chunk


_deps_override: Deps | None = None


def set_deps(deps: Deps | None) -> None:
    """Inject dependencies (tests); None restores the defaults."""
    global _deps_override
    _deps_override = deps


def _deps(deps: Deps | None = None) -> Deps:
    return deps or _deps_override or Deps()


# indexes


def _default_model() -> str:
    if get_settings().local:
        return "local"
    raise InvalidRequest(
        "Name the index's embedding_model: `<provider name>/<model>` of a stored openai or bedrock provider "
        "(for example bedrock/amazon.titan-embed-text-v2:0).",
        code="embedding_model_required",
        param="embedding_model",
    )


def create(principal: Principal, body: IndexCreate, deps: Deps | None = None) -> Index:
    """A new index. Its embedding model is called once (a probe) to learn its vectors' dimension,
    which also proves the model works before any document is added."""
    deps = _deps(deps)
    model = body.embedding_model or _default_model()
    fixed = deps.engine().fixed_dimension
    if fixed is not None and body.dimensions is not None and body.dimensions != fixed:
        raise _dimension_refused(fixed, f"dimensions is {body.dimensions}")
    dimensions = body.dimensions or fixed
    try:
        probe = deps.embed(principal, model, [PROBE_TEXT], "document", dimensions)
    except ProviderError as error:
        raise InvalidRequest(
            f"The embedding model {model!r} could not be used: {error.message}",
            code="embedding_model_unavailable",
            param="embedding_model",
        ) from error
    except (InvalidRequest, NotFound) as error:  # no such model or provider: the index's field is wrong
        raise InvalidRequest(error.message, code=error.code, param="embedding_model") from error
    if fixed is not None and probe and len(probe[0]) != fixed:
        raise _dimension_refused(fixed, f"the model {model!r} gives {len(probe[0])}")
    now = iso()
    record = IndexRecord(
        id=new_id("idx"),
        project_id=principal.project_id,
        name=body.name,
        description=body.description,
        embedding_model=model,
        dimensions=len(probe[0]) if probe else dimensions,
        chunking=body.chunking or ChunkingSettings(),
        metadata=body.metadata,
        created_at=now,
        updated_at=now,
    )
    deps.indexes.put_new(record)
    return record.view()


def _dimension_refused(fixed: int, found: str) -> InvalidRequest:
    return InvalidRequest(
        f"This deployment's search engine stores {fixed}-dimensional vectors, but {found}: choose a model "
        f"that gives {fixed} (or shortens to it with dimensions, as Titan V2 and OpenAI's text-embedding-3 do).",
        code="embedding_dimension_unsupported",
        param="dimensions",
    )


def _load(principal: Principal, index_id: str, deps: Deps, *, param: str | None = None) -> IndexRecord:
    record = deps.indexes.get(principal.project_id, index_id) if has_prefix(index_id, "idx") else None
    if record is None or record.deleting_at is not None:
        if param is not None:
            raise InvalidRequest(f"No index {index_id!r} in this project.", code="index_not_found", param=param)
        raise NotFound(f"No index {index_id!r}.", code="index_not_found")
    return record


def get_for(principal: Principal, index_id: str, *, param: str, deps: Deps | None = None) -> IndexRecord:
    """The index another resource names (a chat, a conversation, an agent): a 400 naming `param`
    when the project has no such index."""
    return _load(principal, index_id, _deps(deps), param=param)


def get(principal: Principal, index_id: str, deps: Deps | None = None) -> Index:
    return _load(principal, index_id, _deps(deps)).view()


def list_indexes(
    principal: Principal, limit: int, position: Position | None, deps: Deps | None = None
) -> tuple[list[Index], Position | None]:
    deps = _deps(deps)
    records, last = deps.indexes.page(principal.project_id, limit, position["after"] if position else None)
    return [r.view() for r in records if r.deleting_at is None], ({"after": last} if last else None)


def update(principal: Principal, index_id: str, body: IndexUpdate, deps: Deps | None = None) -> Index:
    deps = _deps(deps)
    record = _load(principal, index_id, deps)
    fields = body.model_fields_set
    changes: dict[str, Any] = {"updated_at": iso(), "version": record.version + 1}
    for name in ("name", "chunking"):
        if name in fields:
            if getattr(body, name) is None:
                raise InvalidRequest(f"An index's {name} cannot be removed.", param=name)
            changes[name] = getattr(body, name)
    for name in ("description", "metadata"):
        if name in fields:
            changes[name] = getattr(body, name)
    updated = record.model_copy(update=changes)
    deps.indexes.replace(updated, record.version)
    return updated.view()


def delete(principal: Principal, index_id: str, deps: Deps | None = None) -> None:
    """Resumable: the index is marked deleting (no document is added or finished from then on),
    its chunks leave the engine, its documents and their texts are deleted, then the index. A retry
    after a failure half-way finishes the job."""
    deps = _deps(deps)
    record = deps.indexes.get(principal.project_id, index_id) if has_prefix(index_id, "idx") else None
    if record is None:
        raise NotFound(f"No index {index_id!r}.", code="index_not_found")
    if record.deleting_at is None:
        deps.indexes.mark_deleting(record, iso())
    deps.engine().delete_index(principal.project_id, index_id)
    scope = deps.documents.scope(principal.project_id, index_id)
    while True:
        documents, _ = deps.documents.page(scope, 100, None)
        if not documents:
            break
        for document in documents:
            if document.source == "inline":
                deps.blobs.delete(document.object_key)
        deps.documents.purge(principal.project_id, index_id, [d.id for d in documents])
    deps.engine().delete_index(principal.project_id, index_id)  # chunks a late worker wrote meanwhile
    deps.indexes.delete(principal.project_id, index_id)


# documents


def _digest(text: str, metadata: dict[str, Any] | None, name: str | None) -> str:
    material = json.dumps({"text": text, "metadata": metadata or {}, "name": name}, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()


def add_document(
    principal: Principal, index_id: str, body: IndexDocumentAdd, deps: Deps | None = None
) -> IndexDocument:
    """Add (or replace) a document. Small ones are ready (or failed) when this answers; larger
    ones answer `processing` and the worker ingests them."""
    deps = _deps(deps)
    index = _load(principal, index_id, deps)
    if body.document_id is not None:
        from parley.services import documents as stored  # noqa: PLC0415

        source = "document"
        document_id = body.document_id
        stored_name, text = stored.text_of(principal, document_id, "document_id")
        media_type = stored.get(principal, document_id).media_type
        name: str | None = body.name or stored_name
    else:
        source = "inline"
        text = body.text or ""
        document_id = body.id or new_id("doc")
        name = body.name
        media_type = body.media_type or "text/plain"
    size = len(text.encode())
    if size > MAX_INLINE_BYTES:
        raise PayloadTooLarge(
            f"The document has {size} bytes; the limit is {MAX_INLINE_BYTES}.", code="document_too_large"
        )
    if not text.strip():
        raise InvalidRequest("The document has no text to index.", code="document_empty", param="text")
    digest = _digest(text, body.metadata, name)
    from parley.services import limits  # noqa: PLC0415

    limits.check_budgets(principal)  # over a budget: 429 now, and nothing stored
    previous = deps.documents.find(principal.project_id, index_id, document_id)
    if previous is not None and previous.content_sha256 == digest and previous.status != "failed":
        return previous.view()  # unchanged: its chunks stand (or are being built)
    if source == "inline":
        object_key = f"{principal.project_id}/indexes/{index_id}/{digest}"
        deps.blobs.put_text(object_key, text, media_type)  # the text first: a record never points nowhere
    else:
        object_key = _stored_key(principal, document_id)
    now = iso()
    record = IndexDocumentRecord(
        id=document_id,
        project_id=principal.project_id,
        index_id=index_id,
        source=source,
        name=name,
        media_type=media_type,
        metadata=body.metadata,
        status="processing",
        size_bytes=size,
        content_sha256=digest,
        object_key=object_key,
        created_at=previous.created_at if previous else now,
        updated_at=now,
        version=(previous.version + 1) if previous else 1,
    )
    try:
        deps.documents.put(record, previous)
    except StaleDocument:
        raise _busy() from None
    if previous is not None and previous.source == "inline" and previous.object_key != object_key:
        _forget_text(deps, previous.object_key)
    if size > INLINE_INGEST_BYTES:
        _enqueue(deps, principal, record, attempt=1)
        return record.view()
    return _ingest_inline(principal, index, record, text, deps).view()


def _busy() -> Conflict:
    return Conflict(
        "The document changed while this request ran (another add or a delete); retry.", code="document_busy"
    )


def _stored_key(principal: Principal, document_id: str) -> str:
    from parley.services import documents as stored  # noqa: PLC0415

    return stored.object_key_of(principal, document_id)


def _forget_text(deps: Deps, key: str) -> None:
    deps.blobs.delete(key)


def _enqueue(
    deps: Deps,
    principal: Principal,
    record: IndexDocumentRecord,
    *,
    attempt: int,
    delay: int = 0,
    reingest: bool = False,
) -> None:
    deps.queue.send(
        {
            "org_id": principal.org_id,
            "project_id": record.project_id,
            "key_id": principal.key_id,
            "index_id": record.index_id,
            "document_id": record.id,
            "version": record.version,
            "attempt": attempt,
            # a ready document whose chunks may have been overwritten by a late, older ingestion
            **({"reingest": True} if reingest else {}),
        },
        delay_seconds=delay,
    )


def _ingest_inline(
    principal: Principal, index: IndexRecord, record: IndexDocumentRecord, text: str, deps: Deps
) -> IndexDocumentRecord:
    """Ingest within the request; what may pass (a model or engine unavailable, a rate limit) is
    handed to the worker, so the document never stays `processing` with nobody on it."""
    try:
        return _ingest(principal, index, record, text, deps)
    except ParleyError as error:
        later = _retry_in(error, 1)
        if later is None:
            return _fail(record, _failure_code(error), error.message, deps)
        _enqueue(deps, principal, record, attempt=2, delay=later)
        return record


def _retry_in(error: ParleyError, attempt: int) -> int | None:
    """Seconds until the next try of a document whose ingestion failed with `error` on its
    `attempt`-th try; None when it should fail now (a refusal no retry changes, or the last try)."""
    over_budget = isinstance(error, RateLimited) and error.code == "budget_exceeded"  # not before next month
    transient = (isinstance(error, (SearchUnavailable, Unavailable, RateLimited)) and not over_budget) or (
        isinstance(error, ProviderError) and error.retryable
    )
    if not transient or attempt >= MAX_INGEST_ATTEMPTS:
        return None
    delay = INGEST_BACKOFF_SECONDS[min(attempt - 1, len(INGEST_BACKOFF_SECONDS) - 1)]
    retry_after = getattr(error, "retry_after", None)
    return max(delay, int(retry_after or 0))


def _failure_code(error: ParleyError) -> str:
    if isinstance(error, SearchUnavailable):
        return "search_unavailable"
    if isinstance(error, ProviderError):
        return "embedding_failed"
    return error.code or "ingestion_failed"


def _ingest(
    principal: Principal, index: IndexRecord, record: IndexDocumentRecord, text: str, deps: Deps
) -> IndexDocumentRecord:
    """Chunk, embed, put the chunks, finish the record. Raises SearchUnavailable or ProviderError
    (the caller decides: retry later, or fail the document)."""
    pieces = deps.chunk(text, record.media_type, index.chunking)
    vectors = (
        deps.embed(principal, index.embedding_model, [p.text for p in pieces], "document", index.dimensions)
        if pieces
        else []
    )
    chunks = [
        ChunkDoc(
            project_id=record.project_id,
            index_id=record.index_id,
            document_id=record.id,
            chunk_id=f"{record.id}#{p.ordinal}",
            ordinal=p.ordinal,
            text=p.text,
            start=p.start,
            end=p.end,
            vector=v,
            heading=p.heading,
            metadata=record.metadata or {},
        )
        for p, v in zip(pieces, vectors, strict=True)
    ]
    engine = deps.engine()
    engine.put_chunks(record.project_id, record.index_id, record.id, chunks)
    ready = record.model_copy(update={"status": "ready", "chunks": len(chunks), "error": None, "updated_at": iso()})
    try:
        deps.documents.finish(ready, record.version)
    except (StaleDocument, NotFound):
        _after_stale(principal, record, deps)
        return record
    return ready


def _after_stale(principal: Principal, ingested: IndexDocumentRecord, deps: Deps) -> None:
    """The chunks were put but the document changed meanwhile. Deleted (or its index deleting):
    take them out again. Re-added and already ready: its ingestion may have put its chunks
    before these overwrote them, so ingest the current version again."""
    current = deps.documents.find(ingested.project_id, ingested.index_id, ingested.id)
    index = deps.indexes.get(ingested.project_id, ingested.index_id)
    if current is None or index is None or index.deleting_at is not None:
        deps.engine().delete_document(ingested.project_id, ingested.index_id, ingested.id)
        return
    if current.status == "ready":
        _enqueue(deps, principal, current, attempt=1, reingest=True)


def _fail(record: IndexDocumentRecord, code: str, message: str, deps: Deps) -> IndexDocumentRecord:
    failed = record.model_copy(
        update={
            "status": "failed",
            "chunks": 0,
            "error": DocumentError(code=code, message=message[:500]),
            "updated_at": iso(),
        }
    )
    try:
        deps.documents.finish(failed, record.version)
    except (StaleDocument, NotFound):
        return record
    return failed


def ingest_message(body: str, deps: Deps | None = None) -> str:
    """The ingestion worker: one queued document. Returns what happened (for the log); raises
    only when Parley's own storage failed (the queue delivers it again)."""
    deps = _deps(deps)
    message = json.loads(body)
    principal = Principal(
        org_id=str(message["org_id"]),
        project_id=str(message["project_id"]),
        key_id=str(message["key_id"]),
        permissions=WORKER_PERMISSIONS,
    )
    attempt = int(message.get("attempt", 1))
    index = deps.indexes.get(principal.project_id, str(message["index_id"]))
    record = deps.documents.find(principal.project_id, str(message["index_id"]), str(message["document_id"]))
    if index is None or index.deleting_at is not None or record is None:
        return "gone"
    if record.version != int(message["version"]) or (record.status != "processing" and not message.get("reingest")):
        return "stale"
    try:
        text = deps.blobs.get_text(record.object_key)
    except ClientError as error:  # a missing object fails the document; anything else is retried
        if _missing(error):
            _fail(record, "document_not_found", "The document's text is gone (the stored document was deleted).", deps)
            return "failed"
        raise
    try:
        finished = _ingest(principal, index, record, text, deps)
    except ParleyError as error:
        later = _retry_in(error, attempt)
        if later is not None:
            _enqueue(deps, principal, record, attempt=attempt + 1, delay=later)
            return "retrying"
        _fail(record, _failure_code(error), error.message, deps)
        return "failed"
    return finished.status


def _missing(error: Exception) -> bool:
    code = getattr(error, "response", {}).get("Error", {}).get("Code")
    return code in ("NoSuchKey", "404")


def get_document(principal: Principal, index_id: str, document_id: str, deps: Deps | None = None) -> IndexDocument:
    deps = _deps(deps)
    _load(principal, index_id, deps)
    record = deps.documents.find(principal.project_id, index_id, document_id)
    if record is None:
        raise NotFound(f"No document {document_id!r} in index {index_id!r}.", code="document_not_found")
    return record.view()


def list_documents(
    principal: Principal, index_id: str, limit: int, position: Position | None, deps: Deps | None = None
) -> tuple[list[IndexDocument], Position | None]:
    deps = _deps(deps)
    _load(principal, index_id, deps)
    scope = deps.documents.scope(principal.project_id, index_id)
    records, last = deps.documents.page(scope, limit, position["after"] if position else None)
    return [r.view() for r in records], ({"after": last} if last else None)


def delete_document(principal: Principal, index_id: str, document_id: str, deps: Deps | None = None) -> None:
    """Its chunks leave the engine first, then its record: a failure half-way leaves a record a
    retry deletes, never searchable chunks without one (a worker that finishes after the delete
    takes its chunks out again: `_after_stale`)."""
    deps = _deps(deps)
    _load(principal, index_id, deps)
    record = deps.documents.find(principal.project_id, index_id, document_id)
    if record is None:
        raise NotFound(f"No document {document_id!r} in index {index_id!r}.", code="document_not_found")
    deps.engine().delete_document(principal.project_id, index_id, document_id)
    try:
        deps.documents.remove(record)
    except StaleDocument:
        raise _busy() from None
    if record.source == "inline":
        _forget_text(deps, record.object_key)


# retrieval


def retrieve(
    principal: Principal,
    index_id: str,
    text: str,
    options: RagOptions,
    deps: Deps | None = None,
    *,
    param: str = "index_id",
) -> list[Citation]:
    """The index's best chunks for `text` (the latest user message, or a query)."""
    deps = _deps(deps)
    index = _load(principal, index_id, deps, param=param)
    vectors = deps.embed(principal, index.embedding_model, [text], "query", index.dimensions)
    hits = deps.engine().query_chunks(
        ChunkQuery(
            project_id=principal.project_id,
            index_id=index_id,
            text=text,
            vector=vectors[0],
            top_k=options.top_k,
            min_score=options.min_score,
            filter=options.filter or {},
        )
    )
    return [
        Citation(
            index_id=index_id,
            document_id=h.document_id,
            chunk_id=h.chunk_id,
            score=round(h.score, 6),
            start=h.start,
            end=h.end,
            text=h.text,
            heading=h.heading,
            metadata=dict(h.metadata) or None,
        )
        for h in hits
    ]
