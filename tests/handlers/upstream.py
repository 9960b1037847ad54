"""A scripted OpenAI-compatible upstream for handler tests (httpx MockTransport, no network)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from parley.providers.http import make_client
from parley.services import registry


def install(monkeypatch: pytest.MonkeyPatch, script: list[httpx.Response | Exception]) -> list[httpx.Request]:
    """Answer provider calls with `script`, in order (an exception is raised as the transport's);
    returns the requests as they arrive."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(registry, "_http", make_client(httpx.MockTransport(handle)))
    return seen


class _ChunkThenDrop(httpx.SyncByteStream):
    def __init__(self, content: str) -> None:
        self.content = content

    def __iter__(self) -> Iterator[bytes]:
        chunk = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": self.content}, "finish_reason": None}],
        }
        yield f"data: {json.dumps(chunk)}\n\n".encode()
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


def chunk_then_drop(content: str) -> httpx.Response:
    """A stream that sends one delta, then loses its connection."""
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_ChunkThenDrop(content))


def streamed(pieces: list[str]) -> httpx.Response:
    """A whole OpenAI stream: one delta per piece, a finish with usage, then [DONE]."""

    def chunk(delta: dict[str, str], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
        body = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **({"usage": usage} if usage else {}),
        }
        return f"data: {json.dumps(body)}\n\n".encode()

    lines = [chunk({"role": "assistant", "content": p}) for p in pieces]
    lines.append(
        chunk({}, "stop", {"prompt_tokens": 7, "completion_tokens": len(pieces), "total_tokens": 7 + len(pieces)})
    )
    lines.append(b"data: [DONE]\n\n")
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=b"".join(lines))
