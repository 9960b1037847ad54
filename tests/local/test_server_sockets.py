"""The local server's hot path: TCP_NODELAY on every accepted socket, and few writes per
response (headers with the first body bytes; one write per chunk). Behaviour, not timing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest

from parley.runtime.local import LocalApi, LocalResponse, LocalServer


class _Api:
    """Just what the HTTP server asks of a LocalApi: a buffered and a streamed answer."""

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> LocalResponse:
        if target.startswith("/stream"):
            return LocalResponse(200, {"Content-Type": "text/event-stream"}, iter([b"one", b"two", b"three"]), True)
        return LocalResponse(200, {"Content-Type": "application/json"}, iter([b'{"ok":', b" true}"]))

    def gateway_response(self, name: str) -> LocalResponse:
        return LocalResponse(413, {}, iter([b"{}"]))


class _Recorder:
    """Wraps the handler's wfile and keeps every write."""

    def __init__(self, inner: Any, writes: list[bytes]) -> None:
        self._inner, self._writes = inner, writes

    def write(self, data: bytes) -> int:
        self._writes.append(bytes(data))
        return int(self._inner.write(data))

    def flush(self) -> None:
        self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def served() -> Iterator[tuple[LocalServer, list[int], list[bytes]]]:
    server = LocalServer(cast("LocalApi", _Api()), "127.0.0.1", 0)
    nodelay: list[int] = []
    writes: list[bytes] = []
    base = cast("type[Any]", server.RequestHandlerClass)

    def setup(self: Any) -> None:
        base.setup(self)
        nodelay.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        self.wfile = _Recorder(self.wfile, writes)

    server.RequestHandlerClass = type("Recorded", (base,), {"setup": setup})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server, nodelay, writes
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_accepted_sockets_have_tcp_nodelay(served: tuple[LocalServer, list[int], list[bytes]]) -> None:
    server, nodelay, _ = served
    with httpx.Client(timeout=5) as client:
        assert client.get(f"{server.url}/buffered").status_code == 200
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as raw:  # a second connection
        raw.sendall(b"GET /buffered HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert raw.recv(65536).startswith(b"HTTP/1.1 200")
    assert len(nodelay) == 2
    assert all(value != 0 for value in nodelay)


def test_a_buffered_response_is_one_write(served: tuple[LocalServer, list[int], list[bytes]]) -> None:
    server, _, writes = served
    response = httpx.get(f"{server.url}/buffered", timeout=5)
    assert response.json() == {"ok": True}
    assert len(writes) == 1
    head, _, body = writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 12" in head
    assert body == b'{"ok": true}'


def test_a_stream_sends_its_headers_with_the_first_chunk_then_one_write_per_chunk(
    served: tuple[LocalServer, list[int], list[bytes]],
) -> None:
    server, _, writes = served
    with httpx.stream("GET", f"{server.url}/stream", timeout=5) as response:
        assert b"".join(response.iter_bytes()) == b"onetwothree"
        assert response.headers["transfer-encoding"] == "chunked"
    assert len(writes) == 4
    head, _, first = writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding: chunked" in head
    assert first == b"3\r\none\r\n"
    assert writes[1:] == [b"3\r\ntwo\r\n", b"5\r\nthree\r\n", b"0\r\n\r\n"]
