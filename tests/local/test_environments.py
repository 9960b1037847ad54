"""Execution environments in process: one invocation at a time each, cold then warm, as many as
there are concurrent invocations, and at the cap the least recently used idle one makes room."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.runtime.environments import Environments, FunctionError
from parley.runtime.events import proxy_event

ROOT = Path(__file__).parent / "slow_routes"


@pytest.fixture
def pool() -> Iterator[Environments]:
    environments = Environments(lambda function: ROOT / function / "handler.py", dict(os.environ), max_environments=2)
    yield environments
    environments.close()


def event(seconds: float) -> dict[str, object]:
    return proxy_event("GET", "/v1/slow", "/v1/slow", query={"seconds": [str(seconds)]}, request_id="r")


def test_cold_then_warm_and_one_environment_per_concurrent_invocation(pool: Environments) -> None:
    first = pool.invoke("slow", event(0), timeout=30)
    assert first.cold and first.result["statusCode"] == 200
    assert not pool.invoke("slow", event(0), timeout=30).cold  # reused warm
    results = []

    def call() -> None:
        results.append(pool.invoke("slow", event(0.5), timeout=30))

    threads = [threading.Thread(target=call) for _ in range(2)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started < 0.95  # side by side, not one after the other
    assert sorted(r.cold for r in results) == [False, True]  # the warm one, plus one new
    assert pool.counts() == {"slow": 2}


def test_at_the_cap_an_idle_environment_of_another_function_makes_room(pool: Environments) -> None:
    pair = [threading.Thread(target=pool.invoke, args=("slow", event(0.3), 30)) for _ in range(2)]
    for thread in pair:
        thread.start()
    for thread in pair:
        thread.join()
    assert pool.counts() == {"slow": 2}  # the cap
    blocker = threading.Thread(target=pool.invoke, args=("slow", event(1.0), 30))
    blocker.start()
    time.sleep(0.2)
    started = time.monotonic()
    # two exist (one busy, one idle); "missing" has none, so it takes the idle one's slot at once
    with pytest.raises(FunctionError, match="failed to initialise"):
        pool.invoke("missing", event(0), timeout=30)
    assert time.monotonic() - started < 0.8  # it did not wait for the busy one
    blocker.join()
    assert pool.counts() == {"slow": 1}


def test_an_invocation_past_its_timeout_stops_its_environment(pool: Environments) -> None:
    from parley.runtime.environments import InvocationTimeout

    with pytest.raises(InvocationTimeout):
        pool.invoke("slow", event(3), timeout=0.5)
    assert pool.counts() == {}
    assert pool.invoke("slow", event(0), timeout=30).cold
