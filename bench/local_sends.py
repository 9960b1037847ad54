"""Issue [correctness]'s acceptance run: 100 concurrent sends through the local server, 20 times
in a loop; after each burst, every status and hang counted; at the end every history checked
(seqs dense, each reply right after its own message) and the usage report compared with the sum
of the replies' usage. Prints a table; exits 1 on any failure.

    .venv/bin/python -m bench.local_sends [rounds] [sends]   # from the repository root
"""

from __future__ import annotations

import statistics
import sys
import time

from tests.local.bursts import burst, check, conversations_for
from tests.local.conftest import start_server, stop_server


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    sends = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    server = start_server()
    failures = 0
    seconds: list[float] = []
    try:
        conversations = conversations_for(server, 10)
        print(f"{'round':>5} {'200':>5} {'other':>6} {'hung':>5} {'seconds':>8}")
        for round_no in range(rounds):
            started = time.monotonic()
            outcome = burst(server, conversations, sends, round_no)
            seconds.append(time.monotonic() - started)
            ok = outcome.statuses.get(200, 0)
            other = {k: v for k, v in outcome.statuses.items() if k != 200}
            failures += (ok != sends) + outcome.hung
            print(f"{round_no:5} {ok:5} {sum(other.values()):6} {outcome.hung:5} {seconds[-1]:8.1f}  {other or ''}")
        replies, prompt, completion = check(server, conversations, expected_sends=rounds * sends)
    finally:
        stop_server(server)
        problems = [line.rstrip() for line in server.output if " ERROR " in line or " WARNING " in line]
        print("server warnings and errors:", *problems[:30], sep="\n  ")
    print(f"{rounds} x {sends} sends: {replies} pairs stored, seqs dense, usage exact ({prompt} + {completion} tokens)")
    print(f"burst seconds: median {statistics.median(seconds):.1f}, max {max(seconds):.1f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
