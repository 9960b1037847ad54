"""An OpenAI-compatible model server on 127.0.0.1 that waits before its first byte (a slow provider)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _SlowModel(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay: float = 4.0
    in_flight: list[int]  # [current, peak], shared by the server's threads
    lock: threading.Lock
    gate: threading.Event | None = None  # when set up: every call waits for it (at most `delay`)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        with self.lock:
            self.in_flight[0] += 1
            self.in_flight[1] = max(self.in_flight[1], self.in_flight[0])
        try:
            text = "slow " + str(request["messages"][-1].get("content", ""))[:40]
            if request.get("stream"):
                self._start_stream()
                self._hold(stream=True)
                self._stream(text, request.get("model", "slow"))
            else:
                self._hold(stream=False)
                self._json(text, request.get("model", "slow"))
        finally:
            with self.lock:
                self.in_flight[0] -= 1

    def _json(self, text: str, model: str) -> None:
        body = json.dumps(
            {
                "id": "chatcmpl-slow",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _hold(self, *, stream: bool) -> None:
        """Wait `delay` s, or for the gate (at most `delay`). A held stream sends an SSE comment
        every 5 s, as real providers keep a slow stream alive, so the caller's read timeout (60 s
        between bytes) never ends a call the test is still holding."""
        if self.gate is None:
            time.sleep(self.delay)
            return
        deadline = time.monotonic() + self.delay
        while not self.gate.wait(timeout=min(5.0, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return
            if stream:
                self.wfile.write(b": held\n\n")
                self.wfile.flush()

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()

    def _stream(self, text: str, model: str) -> None:
        base = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 1, "model": model}
        chunks = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}},
        ]
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True


class SlowModel:
    def __init__(self, server: ThreadingHTTPServer, handler: type[_SlowModel]) -> None:
        self.server, self._handler = server, handler

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def in_flight(self) -> int:
        return self._handler.in_flight[0]

    @property
    def peak(self) -> int:
        return self._handler.in_flight[1]

    def release(self) -> None:
        """Let every held call (and every later one) answer now."""
        if self._handler.gate is not None:
            self._handler.gate.set()


@contextmanager
def slow_model(delay: float = 4.0, *, gated: bool = False) -> Iterator[SlowModel]:
    """A model server answering every call after `delay` seconds; `gated`, when the test calls
    `release()` instead (or after `delay` at the latest), so calls stay in flight until then."""
    attributes = {
        "delay": delay,
        "in_flight": [0, 0],
        "lock": threading.Lock(),
        "gate": threading.Event() if gated else None,
    }
    handler = type("Handler", (_SlowModel,), attributes)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SlowModel(server, handler)
    finally:
        server.shutdown()
        server.server_close()
