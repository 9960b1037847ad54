"""The built-in `local` embedding model: WordLlama (`l2_supercat`, 256 dimensions), for the local
server and the tests. Lambda never uses it (the package is in the `dev` extra only).

Why WordLlama: its wheel ships the weights (16 MB) and the tokenizer, so it embeds with no network
and no download (model2vec, fastembed and sentence-transformers fetch their models from a hub at
run time, which cannot work here). It imports in ~0.15 s, loads in ~0.1 s, embeds thousands of
short texts a second on one core, is deterministic (token embeddings averaged: no sampling, no
threads racing) and its vectors are Matryoshka-trained, so a shorter `dimensions` is a prefix.
It is a static (bag of token embeddings) model: good enough to make retrieval meaningful in
development, not a substitute for a real embedding model in production.

WordLlama 0.4's `load()` looks for its shipped tokenizer under `tokenizer/` while the wheel has
it under `tokenizers/`, and would then try to download it; pointing `cache_dir` at the package
itself (which has both `weights/` and `tokenizers/`) with `disable_download=True` loads the
shipped files and never touches the network.

Vectors are L2-normalized (as OpenAI's are), so a dot product is the cosine similarity. Tokens
are the model's own tokenizer's (a Llama 2 SentencePiece vocabulary), without special tokens.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from parley.domain.errors import ProviderError, ProviderRejected
from parley.providers.embeddings import EmbeddingReply, EmbeddingRequest, InputLimit

MODEL = "local"
DIMENSIONS = 256
MAX_INPUT_TOKENS = 8192  # Parley's own bound (the model has none); OpenAI's models take 8192 too
MAX_BATCH = 2048

_lock = threading.Lock()
_model: Any = None


def _load() -> Any:
    """The WordLlama model, loaded once per process."""
    global _model
    with _lock:
        if _model is None:
            try:
                from pathlib import Path  # noqa: PLC0415

                import wordllama  # type: ignore[import-untyped]  # noqa: PLC0415 - dev only, loaded when first used
            except ImportError as exc:  # pragma: no cover - the dev extra installs it
                raise ProviderError(
                    "The local embedding model needs the wordllama package (pip install -e '.[dev]').",
                    code="model_unavailable",
                ) from exc
            package = Path(wordllama.__file__).parent
            _model = wordllama.WordLlama.load(cache_dir=package, disable_download=True)
        return _model


def _normalized(vector: list[float], dimensions: int) -> list[float]:
    head = vector[:dimensions]
    norm = math.sqrt(sum(x * x for x in head))
    return [x / norm for x in head] if norm > 0 else head


class LocalEmbeddings:
    name = "local"

    def __repr__(self) -> str:
        return "LocalEmbeddings(wordllama l2_supercat)"

    def batch_limit(self, model: str) -> int:
        return MAX_BATCH

    def input_limit(self, model: str) -> InputLimit:
        return InputLimit(max_tokens=MAX_INPUT_TOKENS)

    def count_tokens(self, model: str, text: str) -> int:
        return len(_load().tokenizer.encode(text, add_special_tokens=False).ids)

    def embed(self, request: EmbeddingRequest) -> EmbeddingReply:
        dimensions = request.dimensions or DIMENSIONS
        if not 1 <= dimensions <= DIMENSIONS:
            # The service checks this first; a direct caller gets the provider's refusal.
            raise ProviderRejected(f"The local model's vectors have 1 to {DIMENSIONS} dimensions.")
        model = _load()
        texts = list(request.inputs)
        matrix = model.embed(texts) if texts else []
        vectors = [_normalized([float(x) for x in row], dimensions) for row in matrix]
        tokens = sum(len(e.ids) for e in model.tokenizer.encode_batch(texts, add_special_tokens=False)) if texts else 0
        return EmbeddingReply(vectors=vectors, prompt_tokens=tokens, model=MODEL)
