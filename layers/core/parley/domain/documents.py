"""Documents (seeds 001, 003): stored texts that messages reference instead of inlining them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from parley.domain.records import ProjectRecord

MediaType = Literal["text/plain", "text/markdown", "text/csv", "text/html", "application/json", "application/xml"]
MAX_DOCUMENT_BYTES = 512 * 1024  # UTF-8 bytes of content; larger ones get 413


class DocumentCreate(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "refunds.md", "media_type": "text/markdown", "content": "Refunds within 30 days."}]
        },
    )

    name: str = Field(min_length=1, max_length=256)
    media_type: MediaType = "text/plain"
    content: str


class Document(BaseModel):
    id: str
    object: Literal["document"] = "document"
    name: str
    media_type: MediaType
    size_bytes: int
    created_at: str
    content: str | None = Field(
        default=None, exclude_if=lambda value: value is None, description="only with include=content"
    )


class DocumentRecord(ProjectRecord):
    name: str
    media_type: MediaType
    size_bytes: int
    object_key: str
    created_at: str
    version: int = 1
