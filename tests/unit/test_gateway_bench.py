"""bench/gateway.py's own parts: its fake upstream speaks OpenAI's chat completions (buffered
and streamed), and the client side counts first content and gaps per chunk. No timing."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from bench import gateway


@pytest.fixture
def upstream() -> Iterator[str]:
    server = gateway._UpstreamServer(("127.0.0.1", 0), gateway._Upstream)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_the_fake_upstream_answers_a_completion_and_the_bench_times_it(upstream: str) -> None:
    target = gateway.Target("direct", upstream, {})
    with httpx.Client(timeout=10) as client:
        reply = client.post(f"{upstream}/chat/completions", json=gateway.BODY).json()
        assert reply["choices"][0]["message"]["content"] == "Hello!"
        assert reply["usage"]["total_tokens"] == 11
        assert gateway._one(client, target) >= 0


def test_a_stream_gives_one_first_content_and_a_gap_per_later_chunk(upstream: str) -> None:
    target = gateway.Target("direct", upstream, {})
    with httpx.Client(timeout=10) as client:
        gateway._stream(client, target)
    assert len(target.first_content) == 1
    assert len(target.gaps) == gateway.CHUNKS - 1


def test_percentiles_pick_from_the_sorted_values() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert gateway._pct(values, 0.5) == 51.0
    assert gateway._pct(values, 0.99) == 100.0
    assert gateway._pct([], 0.5) != gateway._pct([], 0.5)  # nan: nothing measured
