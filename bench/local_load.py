"""The local server under load: 100 concurrent clients sending a mix of requests for 60 s
(health, echo completions, sends to their own and to one shared conversation, history and list
reads), then every history checked. Prints the statuses and latencies per route from the
server's own access log, and the cold starts. The test suite runs the same load for 12 s.

    .venv/bin/python -m bench.local_load [seconds] [clients]   # from the repository root
"""

from __future__ import annotations

import re
import statistics
import sys
from collections import Counter, defaultdict

from tests.local.conftest import start_server, stop_server
from tests.local.load import check_histories, run_mixed_load

LINE = re.compile(r"parley\.access (\w+) (\S+) (\d+) (\d+)ms (\S+).* fn=(\w+)")


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    server = start_server()
    try:
        outcome = run_mixed_load(server, seconds, clients)
        check_histories(server, outcome)
    finally:
        stop_server(server)
    statuses: dict[int, int] = outcome["statuses"]  # type: ignore[assignment]
    latencies: list[float] = outcome["latencies"]  # type: ignore[assignment]
    total = sum(statuses.values())
    print(f"{clients} clients for {seconds:.0f} s: {total} requests ({total / seconds:.1f}/s), statuses {statuses}")
    print(f"hung clients: {outcome['hung']}; histories: consistent")
    print(f"client latency ms: p50 {statistics.median(latencies):.0f}, max {max(latencies):.0f}")
    by_function: dict[str, list[int]] = defaultdict(list)
    cold: Counter[str] = Counter()
    for line in server.output:
        found = LINE.search(line)
        if found:
            by_function[found.group(6)].append(int(found.group(4)))
            cold[found.group(6)] += found.group(5).startswith("cold")
    print(f"{'function':24} {'n':>6} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8} {'cold':>5}")
    for function, times in sorted(by_function.items()):
        times.sort()
        p50, p90 = times[len(times) // 2], times[int(len(times) * 0.9)]
        print(f"{function:24} {len(times):6} {p50:8} {p90:8} {times[-1]:8} {cold[function]:5}")
    problems = [line.rstrip() for line in server.output if " ERROR " in line or " WARNING " in line]
    print("server warnings and errors:", *problems[:20], sep="\n  ")
    return 0 if set(statuses) <= {200, 201} and not outcome["hung"] else 1


if __name__ == "__main__":
    sys.exit(main())
