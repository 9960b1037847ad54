"""Server-sent events encoding (https://html.spec.whatwg.org/multipage/server-sent-events.html)."""

from __future__ import annotations

import json
from typing import Any

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def data(payload: Any) -> bytes:
    """An unnamed event (what OpenAI's streams use): `data: {...}`."""
    return f"data: {_json(payload)}\n\n".encode()


def event(name: str, payload: Any) -> bytes:
    """A named event: `event: name` then `data: {...}`."""
    return f"event: {name}\ndata: {_json(payload)}\n\n".encode()


def done() -> bytes:
    return b"data: [DONE]\n\n"


def ping() -> bytes:
    """A comment line; clients ignore it, proxies see traffic on an idle stream."""
    return b": ping\n\n"
