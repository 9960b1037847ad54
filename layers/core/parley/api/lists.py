"""The list envelope of every collection route (DESIGN.md section 3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from parley.api.cursors import cursor_for
from parley.domain.paging import Pages, Position

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def page(data: Sequence[BaseModel | dict[str, Any]], after: Position | None, pages: Pages) -> dict[str, Any]:
    """The envelope; `after` (the service's next position, None at the end) becomes next_cursor."""
    next_cursor = cursor_for(pages, after)
    return {
        "object": "list",
        "data": [item.model_dump(mode="json") if isinstance(item, BaseModel) else item for item in data],
        "has_more": next_cursor is not None,
        "next_cursor": next_cursor,
    }
