"""Concurrency like Lambda: a slow model call stalls nothing else; many mixed requests neither
hang nor fail, and leave every conversation's history consistent."""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator

import pytest

from tests.local.conftest import Server, start_server, stop_server
from tests.local.load import check_histories, run_mixed_load, slow_sends_in_flight

pytestmark = pytest.mark.local


@pytest.fixture(scope="module")
def fresh() -> Iterator[Server]:
    running = start_server()
    yield running
    stop_server(running)


def test_twenty_slow_sends_in_flight_do_not_stall_health_or_an_echo_completion(fresh: Server) -> None:
    """Behaviour only: with twenty model calls in flight, health and echo completions still
    answer (while the slow calls are still running). Their latencies against the targets (50 ms,
    200 ms) are measured by bench/local_stall.py, not here: timings fail on a loaded machine."""
    stall = slow_sends_in_flight(fresh, 20)
    assert stall.reached == 20, f"only {stall.reached} slow calls reached the model"
    assert stall.waiting == [20] * 6, f"the slow calls ended before the timed requests did: {stall.waiting}"
    assert all(status == 200 for status in stall.timed_statuses), stall.timed_statuses
    assert stall.statuses == [200] * 20, stall.statuses
    assert stall.peak == 20
    print(f"\nhealth ms {stall.health_ms}, echo ms {stall.echo_ms} (targets: bench/local_stall.py)")


MIXED_SECONDS = float(os.environ.get("PARLEY_MIXED_LOAD_SECONDS", "12"))


def test_a_hundred_concurrent_mixed_clients_no_hang_no_5xx_history_consistent(fresh: Server) -> None:
    outcome = run_mixed_load(fresh, MIXED_SECONDS, clients=100)
    statuses: dict[int, int] = outcome["statuses"]  # type: ignore[assignment]
    latencies: list[float] = outcome["latencies"]  # type: ignore[assignment]
    print(
        f"\n{sum(statuses.values())} requests in {MIXED_SECONDS:.0f} s: {statuses}; "
        f"p50 {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms"
    )
    assert outcome["hung"] == 0
    assert set(statuses) <= {200, 201}, statuses
    check_histories(fresh, outcome)
