"""Documents: text in S3, metadata in DynamoDB; and resolving document ids for model calls."""

from __future__ import annotations

from parley.domain.clock import iso
from parley.domain.documents import MAX_DOCUMENT_BYTES, Document, DocumentCreate, DocumentRecord
from parley.domain.errors import InvalidRequest, NotFound, PayloadTooLarge
from parley.domain.ids import has_prefix, new_id
from parley.domain.paging import Pages, Position
from parley.domain.principal import Principal
from parley.storage.blobs import BlobStore
from parley.storage.resources import ResourceRepository


def _repository() -> ResourceRepository[DocumentRecord]:
    return ResourceRepository("document", DocumentRecord)


def _view(record: DocumentRecord, content: str | None = None) -> Document:
    return Document(
        id=record.id,
        name=record.name,
        media_type=record.media_type,
        size_bytes=record.size_bytes,
        created_at=record.created_at,
        content=content,
    )


def create(principal: Principal, body: DocumentCreate) -> Document:
    size = len(body.content.encode())
    if size > MAX_DOCUMENT_BYTES:
        raise PayloadTooLarge(
            f"The document has {size} bytes; the limit is {MAX_DOCUMENT_BYTES}.", code="document_too_large"
        )
    document_id = new_id("doc")
    key = f"{principal.project_id}/{document_id}"
    record = DocumentRecord(
        id=document_id,
        project_id=principal.project_id,
        name=body.name,
        media_type=body.media_type,
        size_bytes=size,
        object_key=key,
        created_at=iso(),
        version=1,
    )
    blobs = BlobStore()
    blobs.put_text(key, body.content, body.media_type)  # the text first: metadata never points nowhere
    try:
        _repository().put_new(record)
    except Exception:
        blobs.delete(key)
        raise
    return _view(record)


def _load(principal: Principal, document_id: str) -> DocumentRecord:
    record = _repository().get(principal.project_id, document_id) if has_prefix(document_id, "doc") else None
    if record is None:
        raise NotFound(f"No document {document_id!r}.", code="document_not_found")
    return record


def get(principal: Principal, document_id: str, *, include_content: bool = False) -> Document:
    record = _load(principal, document_id)
    return _view(record, BlobStore().get_text(record.object_key) if include_content else None)


PAGES = Pages("documents", {"after": str})


def list_documents(
    principal: Principal, limit: int, position: Position | None
) -> tuple[list[Document], Position | None]:
    records, last = _repository().page(principal.project_id, limit, position["after"] if position else None)
    return [_view(r) for r in records], ({"after": last} if last else None)


def delete(principal: Principal, document_id: str) -> None:
    record = _load(principal, document_id)
    if _repository().delete(principal.project_id, document_id):
        BlobStore().delete(record.object_key)


def object_key_of(principal: Principal, document_id: str) -> str:
    return _load(principal, document_id).object_key


def text_of(principal: Principal, document_id: str, param: str) -> tuple[str, str]:
    """(name, text) of a document the caller's project owns, or a 400 naming `param`."""
    try:
        record = _load(principal, document_id)
    except NotFound:
        raise InvalidRequest(
            f"No document {document_id!r} in this project.", code="document_not_found", param=param
        ) from None
    return record.name, BlobStore().get_text(record.object_key)
