"""The list envelope of every collection route (DESIGN.md section 3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from parley.api.cursors import cursor_for
from parley.domain.paging import Pages, Position

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
T = TypeVar("T", bound=BaseModel)


class Page(BaseModel, Generic[T]):
    """`{"object": "list", "data": [...], "has_more": bool, "next_cursor": str | null}`."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


def page(data: Sequence[T], after: Position | None, pages: Pages) -> Page[T]:
    """The envelope; `after` (the service's next position, None at the end) becomes next_cursor."""
    next_cursor = cursor_for(pages, after)
    return Page[T](data=list(data), has_more=next_cursor is not None, next_cursor=next_cursor)
