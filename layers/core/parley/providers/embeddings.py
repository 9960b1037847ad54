"""The embedding provider port. Services speak only this; adapters translate to each wire format
(the local model, OpenAI-compatible `/v1/embeddings`, Bedrock's Titan and Cohere models).

Besides `embed`, an adapter says how many inputs one call may carry for a model (`batch_limit`),
how long one input may be (`input_limit`) and how it counts an input's tokens (`count_tokens`),
so the service can split a request and refuse an input that is too long before calling anyone.
"""

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
    inputs: Sequence[str]  # at most the adapter's batch_limit(model); the service splits larger requests
    input_type: InputType = "document"
    dimensions: int | None = None  # where the model can shorten its vectors (Titan V2, OpenAI text-embedding-3)
    user: str | None = None  # the end user, passed on where the wire format has a field for it


@dataclass(frozen=True)
class EmbeddingReply:
    vectors: Sequence[Sequence[float]]  # one per input, in order
    prompt_tokens: int  # as the provider reports it (or counted, where it reports nothing)
    model: str


@dataclass(frozen=True)
class InputLimit:
    """How long one input may be. `max_tokens` is only set where `count_tokens` is exact for the
    model (its own tokenizer); `max_chars` where the provider documents a character limit."""

    max_tokens: int | None = None
    max_chars: int | None = None


class EmbeddingProvider(Protocol):
    """Adapters raise only parley.domain.errors.ProviderError and its subclasses, never a
    transport exception; retryable errors (timeouts, 429, 5xx) say so."""

    name: str

    def batch_limit(self, model: str) -> int:
        """Inputs per call for this model."""
        ...

    def input_limit(self, model: str) -> InputLimit: ...

    def count_tokens(self, model: str, text: str) -> int:
        """An input's tokens: exact where the model's tokenizer is at hand, else Parley's estimate."""
        ...

    def embed(self, request: EmbeddingRequest) -> EmbeddingReply: ...
