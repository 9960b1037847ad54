"""OpenAI-compatible embeddings: POST {base_url}/embeddings over httpx, no SDK.

The same servers as the chat adapter (OpenAI, Azure OpenAI deployments, vLLM, Ollama, Mistral,
OpenRouter...), with the same connection: the shared client and its timeouts, the headers and
the Azure `api-version`, the mapping of upstream statuses and transport failures to Parley's
provider errors (429, 408/504 and 5xx retryable), and the redaction of credentials from
anything upstream says. It reuses a parley.providers.openai.OpenAIProvider for all of that.

Vectors are asked for as `encoding_format: "float"` (Parley encodes base64 itself, at the edge);
`dimensions` is forwarded when set (text-embedding-3 models shorten their vectors). One call
takes up to 2,048 inputs (OpenAI's documented limit for the array); an input of an
OpenAI-family model may have 8,192 tokens, counted exactly with tiktoken (`cl100k_base`).

Wire format: https://platform.openai.com/docs/api-reference/embeddings/create
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from parley.domain.errors import ProviderError
from parley.domain.tokens import estimate_text
from parley.providers.embeddings import EmbeddingReply, EmbeddingRequest, InputLimit
from parley.providers.http import error_for_transport
from parley.providers.openai import DEFAULT_BASE_URL, PROVIDER, OpenAIProvider, _error_object
from parley.providers.tokenizer import count_text, is_exact

MAX_BATCH = 2048
MAX_INPUT_TOKENS = 8192


class OpenAIEmbeddings:
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str = DEFAULT_BASE_URL,
        headers: Mapping[str, str] | None = None,
        api_version: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self._connection = OpenAIProvider(
            api_key=api_key, base_url=base_url, headers=headers, api_version=api_version, client=client
        )
        self._url = f"{base_url.rstrip('/')}/embeddings"

    def __repr__(self) -> str:
        return f"OpenAIEmbeddings(url={self._url!r})"

    def batch_limit(self, model: str) -> int:
        return MAX_BATCH

    def input_limit(self, model: str) -> InputLimit:
        # Only OpenAI's own models are known (and counted exactly); other servers judge for themselves.
        return InputLimit(max_tokens=MAX_INPUT_TOKENS) if is_exact(model) else InputLimit()

    def count_tokens(self, model: str, text: str) -> int:
        return count_text(model, text) if is_exact(model) else estimate_text(text)

    def build_body(self, request: EmbeddingRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model, "input": list(request.inputs), "encoding_format": "float"}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if request.user is not None:
            body["user"] = request.user
        return body

    def embed(self, request: EmbeddingRequest) -> EmbeddingReply:
        connection = self._connection
        failure: ProviderError
        try:
            response = connection._client.post(
                self._url, params=connection._params, headers=connection._headers, json=self.build_body(request)
            )
        except httpx.HTTPError as exc:
            failure = error_for_transport(PROVIDER, exc)
        else:
            if response.is_success:
                try:
                    return parse_embeddings(request, response.text)
                except ProviderError as exc:
                    failure = exc
            else:
                failure = connection._status_error(response)
        # Raised outside the except blocks, so no httpx exception (whose request holds the
        # headers, key included) is chained to it.
        raise connection._redactor.error(failure)


def parse_embeddings(request: EmbeddingRequest, text: str) -> EmbeddingReply:
    """The port's reply for an OpenAI `list` of `embedding` objects (in `index` order, whatever
    order the server sent them in)."""
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ProviderError(f"{PROVIDER} answered with a body that is not a JSON object.", retryable=True)
    if document.get("error"):
        raise _error_object(document["error"])
    data = document.get("data")
    if not isinstance(data, list):
        raise ProviderError(f"{PROVIDER} answered without embeddings.", retryable=True)
    vectors: dict[int, list[float]] = {}
    for position, item in enumerate(data):
        index = item.get("index", position) if isinstance(item, dict) else None
        vector = item.get("embedding") if isinstance(item, dict) else None
        if (
            not isinstance(index, int)
            or not isinstance(vector, list)
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector)
        ):
            raise ProviderError(
                f"{PROVIDER} answered with an embedding that is not a list of numbers (was encoding_format ignored?).",
                retryable=False,
            )
        vectors[index] = [float(x) for x in vector]
    if sorted(vectors) != list(range(len(request.inputs))):
        raise ProviderError(
            f"{PROVIDER} answered {len(vectors)} embeddings for {len(request.inputs)} inputs.", retryable=True
        )
    usage = document.get("usage")
    reported = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if isinstance(reported, int) and not isinstance(reported, bool):
        tokens = reported
    else:
        # A server that reports no usage: counted as for the context window (exact for OpenAI's models).
        tokens = sum(count_text(request.model, t) for t in request.inputs)
    model = document.get("model")
    return EmbeddingReply(
        vectors=[vectors[i] for i in range(len(request.inputs))],
        prompt_tokens=tokens,
        model=model if isinstance(model, str) and model else request.model,
    )
