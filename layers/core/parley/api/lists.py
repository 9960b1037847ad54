"""The list envelope of every collection route (DESIGN.md section 3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def page(data: Sequence[BaseModel | dict[str, Any]], next_cursor: str | None) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [item.model_dump(mode="json") if isinstance(item, BaseModel) else item for item in data],
        "has_more": next_cursor is not None,
        "next_cursor": next_cursor,
    }
