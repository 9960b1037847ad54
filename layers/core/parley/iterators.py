"""Iterator helpers shared across layers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")


def resume(first: T, rest: Iterator[T]) -> Iterator[T]:
    """`first`, then the rest of the iterator it came from. Closing this closes `rest` too, so a
    generator behind it runs its `finally` even when the consumer stops early."""
    try:
        yield first
        yield from rest
    finally:
        close = getattr(rest, "close", None)
        if close is not None:
            close()
