"""The JSON depth scan (parley.api.bodies.exceeds_depth) on hostile inputs: linear in the size.

    .venv/bin/python bench/body_scan.py

Prints, per input shape, the best of 5 runs at 0.25, 0.5, 1 and 2 MB and the ratio of each size
to the one before (about 2 for a linear scan, 4 for a quadratic one).
"""

from __future__ import annotations

import itertools
import time

from parley.api.bodies import MAX_JSON_DEPTH, exceeds_depth

UNITS = {"escaped quotes": '"\\"', "empty arrays": "[]", "short strings": '"a",', "backslashes": "\\"}
SIZES_MB = (0.25, 0.5, 1.0, 2.0)


def best(text: str, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        exceeds_depth(text, MAX_JSON_DEPTH)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    print(f"{'input':<16}" + "".join(f"{f'{mb} MB ms':>12}" for mb in SIZES_MB) + f"{'ratios':>24}")
    for name, unit in UNITS.items():
        times = [best(unit * int(mb * 1_000_000 / len(unit)) + '"') for mb in SIZES_MB]
        ratios = " ".join(f"{b / a:.2f}" for a, b in itertools.pairwise(times))
        print(f"{name:<16}" + "".join(f"{t * 1000:>12.1f}" for t in times) + f"{ratios:>24}")


if __name__ == "__main__":
    main()
