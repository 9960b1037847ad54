"""Mixed concurrent load against a local server (tests/local and bench/local_load.py)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from tests.local.conftest import Server

ECHO = {"model": "echo", "messages": [{"role": "user", "content": "quick"}]}


def http(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=120)


def run_mixed_load(server: Server, seconds: float, clients: int) -> dict[str, object]:
    """`clients` threads sending a mix of requests for `seconds`; returns statuses and timings.
    Each client owns a conversation (so its history can be checked exactly) and shares one more."""
    with http(server) as setup:
        shared = setup.post("/v1/conversations", json={"title": "shared"}).json()["id"]
    stop_at = time.monotonic() + seconds
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    sent_by: dict[str, list[str]] = {}
    lock = threading.Lock()

    def client_loop(n: int) -> None:
        with http(server) as c:
            created = c.post("/v1/conversations", json={"title": f"c{n}"})
            with lock:
                statuses[created.status_code] = statuses.get(created.status_code, 0) + 1
            if created.status_code != 201:
                return
            own = created.json()["id"]
            mine: list[str] = []
            i = 0
            while time.monotonic() < stop_at:
                i += 1
                kind = (n + i) % 6
                started = time.perf_counter()
                if kind == 0:
                    r = c.get("/v1/health")
                elif kind == 1:
                    r = c.post("/v1/chat/completions", json=ECHO)
                elif kind == 2:
                    text = f"c{n} m{i}"
                    r = c.post(f"/v1/conversations/{own}/messages", json={"content": text, "stream": i % 2 == 0})
                    if r.status_code == 200:
                        mine.append(text)
                elif kind == 3:
                    r = c.get(f"/v1/conversations/{own}/messages", params={"order": "asc", "limit": 100})
                elif kind == 4:
                    r = c.post(f"/v1/conversations/{shared}/messages", json={"content": f"shared {n} {i}"})
                else:
                    r = c.get("/v1/conversations", params={"limit": 5})
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            with lock:
                sent_by[own] = mine

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    hung = sum(t.is_alive() for t in threads)
    return {"statuses": statuses, "latencies": latencies, "sent_by": sent_by, "shared": shared, "hung": hung}


def check_histories(server: Server, outcome: dict[str, object]) -> None:
    sent_by: dict[str, list[str]] = outcome["sent_by"]  # type: ignore[assignment]
    with http(server) as c:
        for conversation, sent in sent_by.items():
            messages = c.get(f"/v1/conversations/{conversation}/messages", params={"order": "asc", "limit": 100})
            data = messages.json()["data"]
            assert [m["seq"] for m in data] == list(range(1, len(data) + 1))
            assert [m["content"] for m in data[0::2]] == sent[:50]
            replies = [(r["seq"], r["role"], r["status"]) for r in data[1::2]]
            assert all(role == "assistant" and status == "completed" for _, role, status in replies), replies
        shared = c.get(f"/v1/conversations/{outcome['shared']}/messages", params={"order": "asc", "limit": 100})
        data = shared.json()["data"]
        assert [m["seq"] for m in data] == list(range(1, len(data) + 1))
        for user, reply in zip(data[0::2], data[1::2], strict=False):
            pair = [(m["seq"], m["role"], m["status"], m["content"]) for m in (user, reply)]
            assert (user["role"], reply["role"], reply["content"]) == ("user", "assistant", user["content"]), pair


@dataclass
class Stall:
    """What `slow_sends_in_flight` saw."""

    reached: int  # slow calls that reached the model before the timed requests
    waiting: list[int]  # calls in flight around each timed request
    health_ms: list[float]
    echo_ms: list[float]
    timed_statuses: list[int]
    statuses: list[int]  # of the slow sends
    peak: int


def _timed(call: httpx.Client, method: str, path: str, **kwargs: Any) -> tuple[float, int]:
    started = time.perf_counter()
    response = call.request(method, path, **kwargs)
    return round((time.perf_counter() - started) * 1000, 1), response.status_code


def slow_sends_in_flight(server: Server, count: int, reach_seconds: float = 240) -> Stall:
    """`count` streamed sends to a model that holds every call until released, all in flight;
    meanwhile 5 health checks and 5 echo completions, timed (tests/local/test_concurrency_http.py,
    bench/local_stall.py). The hold lasts until every call has reached the model (cold starts on a
    busy 2-core box take a while), however long that is, up to `reach_seconds`."""
    from tests.local.upstream import slow_model

    with slow_model(delay=reach_seconds + 60, gated=True) as model, http(server) as client:
        provider = client.post(
            "/v1/providers", json={"type": "openai", "name": "slow", "base_url": model.base_url, "default_model": "m"}
        ).json()
        conversation = client.post("/v1/conversations", json={"provider_id": provider["id"]}).json()
        for _ in range(3):  # warm environments for the two routes timed below (as a running server has)
            client.get("/v1/health")
            client.post("/v1/chat/completions", json=ECHO)

        def send(i: int) -> int:
            with http(server) as own:
                body = {"content": f"slow question {i}", "stream": True}
                path = f"/v1/conversations/{conversation['id']}/messages"
                return own.post(path, json=body, timeout=reach_seconds + 120).status_code

        with ThreadPoolExecutor(max_workers=count) as pool:
            sends = [pool.submit(send, i) for i in range(count)]
            deadline = time.monotonic() + reach_seconds  # cold starts on a busy 2-core box take a while
            while model.in_flight < count and time.monotonic() < deadline:
                time.sleep(0.05)
            reached = model.in_flight
            waiting: list[int] = []
            health: list[tuple[float, int]] = []
            echo: list[tuple[float, int]] = []
            for _ in range(5):
                waiting.append(model.in_flight)
                health.append(_timed(client, "GET", "/v1/health"))
                echo.append(_timed(client, "POST", "/v1/chat/completions", json=ECHO))
            waiting.append(model.in_flight)
            model.release()
            statuses = [s.result() for s in sends]
    return Stall(
        reached=reached,
        waiting=waiting,
        health_ms=[ms for ms, _ in health],
        echo_ms=[ms for ms, _ in echo],
        timed_statuses=[status for _, status in health + echo],
        statuses=statuses,
        peak=model.peak,
    )
