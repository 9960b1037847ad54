"""The chunker (parley.domain.chunking) on 0.25 to 2 MB texts: linear in the size.

    .venv/bin/python bench/chunking.py

Prints, per text shape, the best of 3 runs at each size, the chunks made, and the ratio of each
size's time to the one before (about 2 for a linear chunker, 4 for a quadratic one); and one row
for the local embedding model (WordLlama) embedding the 1 MB markdown's chunks.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from parley.domain.chunking import chunk

SIZES_MB = (0.25, 0.5, 1.0, 2.0)


def markdown(size: int) -> str:
    parts, total, i = [], 0, 0
    while total < size:
        part = f"## Section {i}\n\n" + " ".join(
            f"Sentence {j} of section {i} says something useful." for j in range(40)
        )
        part += "\n\n" + "A second paragraph, shorter. " * 5 + "\n\n"
        parts.append(part)
        total += len(part)
        i += 1
    return "".join(parts)[:size]


def prose(size: int) -> str:
    return ("The refund policy applies to every order placed in the last thirty days. " * (size // 74 + 1))[:size]


def dense(size: int) -> str:
    return ("x" * 997 + "!!!") * (size // 1000 + 1)


SHAPES: dict[str, tuple[Callable[[int], str], str]] = {
    "markdown": (markdown, "text/markdown"),
    "one paragraph": (prose, "text/plain"),
    "no whitespace": (dense, "text/plain"),
}


def best(text: str, media_type: str, runs: int = 3) -> tuple[float, int]:
    times, made = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        made = len(chunk(text, media_type=media_type))
        times.append(time.perf_counter() - started)
    return min(times), made


def main() -> None:
    print(
        f"{'text':<15}" + "".join(f"{f'{mb} MB ms':>12}" for mb in SIZES_MB) + f"{'chunks at 1 MB':>16}{'ratios':>20}"
    )
    for name, (make, media_type) in SHAPES.items():
        results = [best(make(int(mb * 1_000_000)), media_type) for mb in SIZES_MB]
        ratios = [later[0] / earlier[0] for earlier, later in itertools.pairwise(results)]
        chunks_1mb = results[SIZES_MB.index(1.0)][1]
        print(
            f"{name:<15}"
            + "".join(f"{seconds * 1000:>12.0f}" for seconds, _ in results)
            + f"{chunks_1mb:>16}"
            + f"{' '.join(f'{r:.1f}' for r in ratios):>20}"
        )
    from parley.providers.embeddings import EmbeddingRequest  # noqa: PLC0415
    from parley.providers.local_embeddings import LocalEmbeddings  # noqa: PLC0415

    texts = [c.text for c in chunk(markdown(1_000_000), media_type="text/markdown")]
    model = LocalEmbeddings()
    model.embed(EmbeddingRequest("local", texts[:1]))  # load once
    started = time.perf_counter()
    for start in range(0, len(texts), 2048):
        model.embed(EmbeddingRequest("local", texts[start : start + 2048]))
    print(
        f"local model: {len(texts)} chunks of the 1 MB markdown embedded in"
        f" {(time.perf_counter() - started) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
