"""Parley's local server as an OpenAI gateway, side by side with calling the upstream directly
and (when it is installed: `pip install -e '.[bench]'`, or LITELLM_CLI names its CLI in a venv
of its own) LiteLLM's proxy with one worker.

One fast fake OpenAI upstream on 127.0.0.1 answers every target. The targets are measured in
interleaved rounds (each round runs every target in turn, so a noisy moment on a shared machine
hits them all), and the bench prints:

- non-streamed latency p50/p95/p99 per target, and the overhead over the direct call;
- throughput at concurrency 10 (requests per second over a fixed time per target);
- streams: time to the first content chunk (p50/p95) and the inter-chunk gap at the client,
  against the upstream's own gap (GAP_MS): its p50, p99 and the worst stall;
- the ratios against LiteLLM when it runs.

    .venv/bin/python -m bench.gateway [rounds] [requests-per-round]   # make bench-gateway [ROUNDS=5 REQUESTS=60]
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.local.conftest import start_server, stop_server

CHUNKS = 8  # content chunks per streamed reply
GAP_MS = 20.0  # the upstream's pause between them
CONCURRENCY = 10
THROUGHPUT_SECONDS = 4.0
MODEL = "gpt-bench"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}]}


class _Upstream(BaseHTTPRequestHandler):
    """OpenAI's chat completions, as fast as it can answer (one write per response and chunk)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        model = str(request.get("model", MODEL))
        if not request.get("stream"):
            body = json.dumps(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
                }
            ).encode()
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            self.wfile.write(head + body)
            return
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(CHUNKS):
            delta = {"role": "assistant", "content": f"w{i} "} if i == 0 else {"content": f"w{i} "}
            self._chunk({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}, model)
            time.sleep(GAP_MS / 1000)
        self._chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, model)
        usage = {"prompt_tokens": 9, "completion_tokens": CHUNKS, "total_tokens": 9 + CHUNKS}
        self._chunk({"choices": [], "usage": usage}, model)
        data = b"data: [DONE]\n\n"
        self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))

    def _chunk(self, fields: dict[str, Any], model: str) -> None:
        event = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": model, **fields}
        data = b"data: " + json.dumps(event).encode() + b"\n\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


class _UpstreamServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


@dataclass
class Target:
    name: str
    url: str  # the base URL, ending in /v1
    headers: dict[str, str]
    latencies: list[float] = field(default_factory=list)
    first_content: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    throughput: float = 0.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_litellm(upstream: str) -> tuple[subprocess.Popen[bytes], str, Path, str] | None:
    """LiteLLM's proxy (one worker) in front of the upstream, if its CLI is installed; with a
    master key (it refuses to start without one), so both gateways authenticate each call."""
    cli = (
        os.environ.get("LITELLM_CLI")
        or shutil.which("litellm", path=str(Path(sys.executable).parent))
        or shutil.which("litellm")
    )
    if cli is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix="bench-litellm-"))
    config = folder / "config.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream}\n"
        "      api_key: sk-bench\n"
    )
    port = _free_port()
    master_key = "sk-bench-" + secrets.token_hex(16)
    process = subprocess.Popen(
        [cli, "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "LITELLM_MASTER_KEY": master_key},
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            answer = httpx.post(
                f"{url}/chat/completions", json=BODY, headers={"Authorization": f"Bearer {master_key}"}, timeout=5
            )
            if answer.status_code == 200:
                return process, url, folder, master_key
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.5)
    process.terminate()
    print("litellm: installed but its proxy did not answer; measured without it", file=sys.stderr)
    return None


def _one(client: httpx.Client, target: Target) -> float:
    started = time.perf_counter()
    response = client.post(f"{target.url}/chat/completions", json=BODY, headers=target.headers)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed * 1000


def _stream(client: httpx.Client, target: Target) -> None:
    started = time.perf_counter()
    last: float | None = None
    body = {**BODY, "stream": True}
    with client.stream("POST", f"{target.url}/chat/completions", json=body, headers=target.headers) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or []
            if not choices or not choices[0].get("delta", {}).get("content"):
                continue
            now = time.perf_counter()
            if last is None:
                target.first_content.append((now - started) * 1000)
            else:
                target.gaps.append((now - last) * 1000)
            last = now


def _throughput(target: Target) -> float:
    done = [0]
    lock = threading.Lock()
    stop = time.monotonic() + THROUGHPUT_SECONDS

    def worker() -> None:
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < stop:
                _one(client, target)
                with lock:
                    done[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0] / (time.monotonic() - started)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _rounds(targets: list[Target], rounds: int, per_round: int, clients: dict[str, httpx.Client]) -> None:
    for _ in range(rounds):
        for target in targets:
            client = clients[target.name]
            target.latencies += [_one(client, target) for _ in range(per_round)]
            for _ in range(max(1, per_round // 10)):
                _stream(client, target)


def _table(targets: list[Target], litellm: Target | None) -> None:
    direct = targets[0]
    print(f"\nnon-streamed latency, ms ({len(direct.latencies)} requests per target, interleaved rounds)")
    print(f"{'target':10} {'p50':>8} {'p95':>8} {'p99':>8} {'+p50':>8} {'+p95':>8} {'+p99':>8} {'req/s @10':>10}")
    for t in targets:
        cells = [_pct(t.latencies, q) for q in (0.5, 0.95, 0.99)]
        over = [c - _pct(direct.latencies, q) for c, q in zip(cells, (0.5, 0.95, 0.99), strict=True)]
        print(
            f"{t.name:10} "
            + " ".join(f"{c:8.1f}" for c in cells)
            + " "
            + " ".join(f"{o:8.1f}" for o in over)
            + f" {t.throughput:10.1f}"
        )
    print(f"\nstreams: first content and inter-chunk gap at the client, ms (the upstream pauses {GAP_MS:.0f} ms)")
    print(f"{'target':10} {'n':>4} {'ttfc p50':>9} {'ttfc p95':>9} {'gap p50':>8} {'gap p99':>8} {'gap max':>8}")
    for t in targets:
        print(
            f"{t.name:10} {len(t.first_content):4} {_pct(t.first_content, 0.5):9.1f} {_pct(t.first_content, 0.95):9.1f}"
            f" {_pct(t.gaps, 0.5):8.1f} {_pct(t.gaps, 0.99):8.1f} {max(t.gaps, default=float('nan')):8.1f}"
        )
    if litellm is None:
        print("\nLiteLLM: not installed (pip install -e '.[bench]'); no ratios")
        return
    parley = next(t for t in targets if t.name == "parley")
    ratio: Callable[[float, float], str] = lambda a, b: f"{a / b:.2f}x" if b > 0 else "-"  # noqa: E731
    print("\nparley / litellm (below 1 is better for latency, above 1 for throughput)")
    for q in (0.5, 0.95, 0.99):
        ours = _pct(parley.latencies, q) - _pct(direct.latencies, q)
        theirs = _pct(litellm.latencies, q) - _pct(direct.latencies, q)
        print(f"  overhead p{int(q * 100)}: {ratio(ours, theirs)}")
    print(f"  throughput @10: {ratio(parley.throughput, litellm.throughput)}")
    print(f"  ttfc p95: {ratio(_pct(parley.first_content, 0.95), _pct(litellm.first_content, 0.95))}")


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    per_round = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    upstream = _UpstreamServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    upstream_url = f"http://127.0.0.1:{upstream.server_address[1]}/v1"
    server = start_server("--log-level", "WARNING")
    litellm = _start_litellm(upstream_url)
    try:
        parley_headers = {"Authorization": f"Bearer {server.key}"}
        created = httpx.post(
            f"{server.url}/v1/providers",
            json={
                "type": "openai",
                "name": "bench",
                "base_url": upstream_url,
                "api_key": "sk-bench",
                "default_model": MODEL,
                "is_default": True,
            },
            headers=parley_headers,
            timeout=30,
        )
        created.raise_for_status()
        targets = [
            Target("direct", upstream_url, {}),
            Target("parley", f"{server.url}/v1", parley_headers),
        ]
        litellm_target = None
        if litellm is not None:
            litellm_target = Target("litellm", litellm[1], {"Authorization": f"Bearer {litellm[3]}"})
            targets.append(litellm_target)
        clients = {t.name: httpx.Client(timeout=30) for t in targets}
        for target in targets:  # warm: cold starts are bench/cold_start.py's business
            for _ in range(20):
                _one(clients[target.name], target)
            _stream(clients[target.name], target)
            target.first_content.clear()
            target.gaps.clear()
        _rounds(targets, rounds, per_round, clients)
        for target in targets:
            target.throughput = _throughput(target)
        for client in clients.values():
            client.close()
        _table(targets, litellm_target)
    finally:
        stop_server(server)
        if litellm is not None:
            litellm[0].terminate()
            litellm[0].wait(timeout=15)
            shutil.rmtree(litellm[2], ignore_errors=True)
        upstream.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
