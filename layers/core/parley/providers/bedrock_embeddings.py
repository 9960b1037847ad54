"""Amazon Bedrock embeddings through InvokeModel (boto3, IAM credentials): Amazon Titan Text
Embeddings (V2 `amazon.titan-embed-text-v2:0`, and V1) and Cohere Embed v3
(`cohere.embed-english-v3`, `cohere.embed-multilingual-v3`). Cross-region profile ids
(`us.cohere...`) and ARNs are recognised by the model name they contain.

- Titan takes one text per call: `{"inputText", "dimensions" (256, 512 or 1024), "normalize"}`
  and answers `{"embedding", "inputTextTokenCount"}`. An input may have 8,192 tokens or 50,000
  characters. V1 takes `inputText` only.
- Cohere takes up to 96 texts of up to 2,048 characters: `{"texts", "input_type"
  ("search_document" | "search_query"), "truncate": "NONE"}` (an input over the model's 512
  tokens is refused, never silently cut) and answers `{"embeddings": [[...]]}` (or, had
  `embedding_types` been sent, `{"embeddings": {"float": [[...]]}}`). Its token count comes from
  the `X-Amzn-Bedrock-Input-Token-Count` response header; without it Parley's estimate stands in.

Errors are mapped as for the chat adapter (parley.providers.bedrock): throttling 429, validation
400, credentials, timeouts and 5xx (retryable).

Wire reference: https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html
and https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed.html
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from parley.aws import clients
from parley.domain.errors import ProviderError, ProviderRejected
from parley.domain.tokens import estimate_text
from parley.providers.bedrock import PROVIDER, _client_error, _transport_error
from parley.providers.embeddings import EmbeddingReply, EmbeddingRequest, InputLimit

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

Family = Literal["titan-v2", "titan-v1", "cohere"]
TITAN_DIMENSIONS = (256, 512, 1024)
COHERE_MAX_BATCH = 96
COHERE_MAX_CHARS = 2048
TITAN_MAX_CHARS = 50_000
TOKEN_HEADER = "x-amzn-bedrock-input-token-count"  # noqa: S105 - a header name, not a secret


def family(model: str) -> Family:
    name = model.lower()
    if "titan-embed-text-v2" in name:
        return "titan-v2"
    if "titan-embed-text-v1" in name or "titan-embed-g1-text" in name:
        return "titan-v1"
    if "cohere.embed-" in name:
        return "cohere"
    raise ProviderRejected(
        f"{PROVIDER}: {model!r} is not an embedding model Parley can call; use amazon.titan-embed-text-v2:0,"
        " cohere.embed-english-v3 or cohere.embed-multilingual-v3."
    )


class BedrockEmbeddings:
    name = PROVIDER

    def __init__(self, *, client: BedrockRuntimeClient | None = None) -> None:
        self._client = client

    def __repr__(self) -> str:
        return "BedrockEmbeddings()"

    def _runtime(self) -> BedrockRuntimeClient:
        # Resolved at call time, so building the adapter never builds a boto3 client.
        return self._client if self._client is not None else clients().bedrock_runtime

    def batch_limit(self, model: str) -> int:
        return COHERE_MAX_BATCH if family(model) == "cohere" else 1

    def input_limit(self, model: str) -> InputLimit:
        return InputLimit(max_chars=COHERE_MAX_CHARS if family(model) == "cohere" else TITAN_MAX_CHARS)

    def count_tokens(self, model: str, text: str) -> int:
        return estimate_text(text)  # no offline tokenizer is published for these models

    def _invoke(self, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """The decoded response body and the response headers (lower-case names)."""
        try:
            response = self._runtime().invoke_model(
                modelId=model, body=json.dumps(body), contentType="application/json", accept="application/json"
            )
            raw = response["body"].read()
        except ClientError as error:
            raise _client_error(error) from error
        except BotoCoreError as error:
            raise _transport_error(error) from error
        try:
            document = json.loads(raw)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise ProviderError(f"{PROVIDER} answered with a body that is not a JSON object.", retryable=True)
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return document, {str(k).lower(): str(v) for k, v in headers.items()}

    def embed(self, request: EmbeddingRequest) -> EmbeddingReply:
        kind = family(request.model)
        if kind == "cohere":
            return self._cohere(request)
        vectors: list[list[float]] = []
        tokens = 0
        for text in request.inputs:
            body: dict[str, Any] = {"inputText": text}
            if kind == "titan-v2":
                if request.dimensions is not None and request.dimensions not in TITAN_DIMENSIONS:
                    raise ProviderRejected(
                        f"{PROVIDER}: Titan Text Embeddings V2 has 256, 512 or 1024 dimensions,"
                        f" not {request.dimensions}."
                    )
                body["normalize"] = True
                if request.dimensions is not None:
                    body["dimensions"] = request.dimensions
            elif request.dimensions is not None and request.dimensions != 1536:
                raise ProviderRejected(f"{PROVIDER}: Titan Text Embeddings V1 has 1536 dimensions only.")
            document, _ = self._invoke(request.model, body)
            vectors.append(_vector(document.get("embedding")))
            count = document.get("inputTextTokenCount")
            tokens += count if isinstance(count, int) and not isinstance(count, bool) else estimate_text(text)
        return EmbeddingReply(vectors=vectors, prompt_tokens=tokens, model=request.model)

    def _cohere(self, request: EmbeddingRequest) -> EmbeddingReply:
        if request.dimensions is not None and request.dimensions != 1024:
            raise ProviderRejected(f"{PROVIDER}: Cohere Embed v3 has 1024 dimensions only.")
        body = {
            "texts": list(request.inputs),
            "input_type": "search_query" if request.input_type == "query" else "search_document",
            "truncate": "NONE",
        }
        document, headers = self._invoke(request.model, body)
        embeddings = document.get("embeddings")
        if isinstance(embeddings, dict):  # the shape when embedding_types is given
            embeddings = embeddings.get("float")
        if not isinstance(embeddings, list) or len(embeddings) != len(request.inputs):
            raise ProviderError(f"{PROVIDER} answered without one embedding per input.", retryable=True)
        header = headers.get(TOKEN_HEADER, "")
        tokens = int(header) if header.isdigit() else sum(estimate_text(t) for t in request.inputs)
        return EmbeddingReply(vectors=[_vector(v) for v in embeddings], prompt_tokens=tokens, model=request.model)


def _vector(value: object) -> list[float]:
    if not isinstance(value, list) or not value or not all(_number(x) for x in value):
        raise ProviderError(f"{PROVIDER} answered with an embedding that is not a list of numbers.", retryable=True)
    return [float(x) for x in value]


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


__all__: Sequence[str] = ["BedrockEmbeddings", "family"]
