"""The embedding provider port. Services speak only this; adapters translate to each wire format
(the local model, OpenAI-compatible `/v1/embeddings`, Bedrock's Titan and Cohere models)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

# Some models embed a search query differently from the passages it is matched against (Cohere's
# input_type); the others ignore it.
InputType = Literal["query", "document"]


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    inputs: Sequence[str]  # at most the adapter's max_batch; the service splits larger requests
    input_type: InputType = "document"
    dimensions: int | None = None  # where the model can shorten its vectors (Titan V2, OpenAI text-embedding-3)


@dataclass(frozen=True)
class EmbeddingReply:
    vectors: Sequence[Sequence[float]]  # one per input, in order
    prompt_tokens: int  # as the provider reports it (or counted, where it reports nothing)
    model: str


class EmbeddingProvider(Protocol):
    """Adapters raise only parley.domain.errors.ProviderError and its subclasses, never a
    transport exception; retryable errors (timeouts, 429, 5xx) say so."""

    name: str
    max_batch: int  # inputs per call

    def embed(self, request: EmbeddingRequest) -> EmbeddingReply: ...
