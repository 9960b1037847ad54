"""What a paginated list's position looks like. Services hand positions out and take them back;
the api layer signs them into opaque cursors (parley.api.cursors) and checks their shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# A field's expected type: one type, or several (e.g. (str, type(None)) for an optional string).
Shape = Mapping[str, type | tuple[type, ...]]
Position = dict[str, Any]


@dataclass(frozen=True)
class Pages:
    kind: str  # a cursor of one list is refused by another
    shape: Shape
