"""The local server with 20 slow model calls in flight (a model that takes 4 s): how long a health
check and an echo completion take meanwhile, against the targets (median 50 ms and 200 ms).

    .venv/bin/python -m bench.local_stall [rounds]   # from the repository root (default 3 rounds)

tests/local/test_concurrency_http.py checks the behaviour (nothing stalls, everything answers);
the timings live here, where a loaded machine does not fail the suite.
"""

from __future__ import annotations

import statistics
import sys

from tests.local.conftest import start_server, stop_server
from tests.local.load import slow_sends_in_flight

TARGETS = {"health": 50.0, "echo completion": 200.0}


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    samples: dict[str, list[float]] = {name: [] for name in TARGETS}
    server = start_server()
    try:
        for _ in range(rounds):
            stall = slow_sends_in_flight(server, 20)
            samples["health"] += stall.health_ms
            samples["echo completion"] += stall.echo_ms
    finally:
        stop_server(server)
    print(f"{'with 20 slow calls in flight':<30} {'n':>4} {'p50 ms':>8} {'max ms':>8} {'target p50':>11}  ok")
    ok = True
    for name, values in samples.items():
        median = statistics.median(values)
        good = median < TARGETS[name]
        ok &= good
        verdict = "yes" if good else "NO"
        print(f"{name:<30} {len(values):>4} {median:>8.1f} {max(values):>8.1f} {TARGETS[name]:>11.0f}  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
