"""The embedding adapters' wire formats: OpenAI-compatible /v1/embeddings (httpx MockTransport)
and Bedrock InvokeModel for Titan and Cohere (a real boto3 client whose HTTP send is replaced, so
botocore serializes the request and parses the answer, headers included). Nothing leaves the
machine."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config

from parley.domain.errors import ProviderError, ProviderRateLimited, ProviderRejected, ProviderTimeout
from parley.providers.bedrock_embeddings import BedrockEmbeddings, family
from parley.providers.embeddings import EmbeddingRequest
from parley.providers.http import make_client
from parley.providers.openai_embeddings import OpenAIEmbeddings

KEY = "sk-embed-secret-key-0001"


def openai(handler: Any, **kwargs: Any) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(api_key=KEY, client=make_client(httpx.MockTransport(handler)), **kwargs)


def test_openai_request_and_reply_in_index_order() -> None:
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": [
                    {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
                    {"object": "embedding", "index": 0, "embedding": [1, 0]},
                ],
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 5, "total_tokens": 5},
            },
        )

    reply = openai(handle).embed(EmbeddingRequest("text-embedding-3-small", ["a", "b"], dimensions=2))
    assert reply.vectors == [[1.0, 0.0], [0.0, 1.0]]
    assert reply.prompt_tokens == 5
    assert json.loads(sent[0].content) == {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "encoding_format": "float",
        "dimensions": 2,
    }
    assert sent[0].headers["authorization"] == f"Bearer {KEY}"


def test_openai_azure_deployment_url_and_key_header() -> None:
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"data": [{"index": 0, "embedding": [0.5]}]})

    adapter = openai(handle, base_url="https://x.openai.azure.com/openai/deployments/emb", api_version="2024-10-21")
    reply = adapter.embed(EmbeddingRequest("text-embedding-3-small", ["hello world"]))
    assert str(sent[0].url) == "https://x.openai.azure.com/openai/deployments/emb/embeddings?api-version=2024-10-21"
    assert sent[0].headers["api-key"] == KEY
    assert reply.prompt_tokens == 2  # no usage reported: counted with tiktoken


@pytest.mark.parametrize(
    ("response", "kind", "retryable"),
    [
        (
            httpx.Response(429, headers={"retry-after": "2"}, json={"error": {"message": "slow down"}}),
            ProviderRateLimited,
            True,
        ),
        (httpx.Response(500, json={"error": {"message": "boom"}}), ProviderError, True),
        (httpx.Response(400, json={"error": {"message": f"bad input, key {KEY}"}}), ProviderRejected, False),
        (httpx.Response(200, json={"data": [{"index": 0, "embedding": "AAAA"}]}), ProviderError, False),
        (httpx.Response(200, json={"data": []}), ProviderError, True),
        (httpx.Response(200, text="<html>"), ProviderError, True),
    ],
)
def test_openai_failures_map_to_provider_errors_without_the_key(
    response: httpx.Response, kind: type[ProviderError], retryable: bool
) -> None:
    with pytest.raises(kind) as caught:
        openai(lambda request: response).embed(EmbeddingRequest("text-embedding-3-small", ["a"]))
    assert caught.value.retryable is retryable
    assert KEY not in str(caught.value)


def test_openai_transport_errors_are_retryable() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(ProviderTimeout):
        openai(timeout).embed(EmbeddingRequest("m", ["a"]))


def test_openai_input_limits_are_known_only_for_openai_models() -> None:
    adapter = openai(lambda request: httpx.Response(500))
    assert adapter.input_limit("text-embedding-3-large").max_tokens == 8192
    assert adapter.input_limit("nomic-embed-text").max_tokens is None
    assert adapter.batch_limit("text-embedding-3-small") == 2048
    assert adapter.count_tokens("text-embedding-3-small", "hello world") == 2


# --- Bedrock ---------------------------------------------------------------------------------


class _Raw(io.BytesIO):
    def stream(self, amt: int = 1024, decode_content: bool | None = None) -> Iterator[bytes]:
        while chunk := self.read(amt):
            yield chunk


class Bedrock:
    """A bedrock-runtime client whose InvokeModel calls are answered from a script."""

    def __init__(self, answers: list[tuple[int, dict[str, Any], dict[str, str]]]) -> None:
        self.answers = answers
        self.sent: list[dict[str, Any]] = []
        self.client = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"total_max_attempts": 1}),
        )
        self.client.meta.events.register("before-send.bedrock-runtime.InvokeModel", self._send)

    def _send(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        self.sent.append({"url": request.url, "body": json.loads(request.body or b"{}")})
        status, body, headers = self.answers.pop(0)
        raw = json.dumps(body).encode()
        all_headers = {"content-type": "application/json", "content-length": str(len(raw)), **headers}
        http_headers = HTTPHeaders()
        for name, value in all_headers.items():
            http_headers[name] = value
        return AWSResponse(request.url, status, http_headers, _Raw(raw))


def test_titan_v2_one_call_per_text_with_dimensions_and_normalize() -> None:
    bedrock = Bedrock(
        [
            (200, {"embedding": [0.6, 0.8], "inputTextTokenCount": 3}, {}),
            (200, {"embedding": [1.0, 0.0], "inputTextTokenCount": 4}, {}),
        ]
    )
    adapter = BedrockEmbeddings(client=bedrock.client)
    assert adapter.batch_limit("amazon.titan-embed-text-v2:0") == 1
    reply = adapter.embed(EmbeddingRequest("amazon.titan-embed-text-v2:0", ["one", "two"], dimensions=256))
    assert reply.vectors == [[0.6, 0.8], [1.0, 0.0]]
    assert reply.prompt_tokens == 7
    assert [s["body"] for s in bedrock.sent] == [
        {"inputText": "one", "normalize": True, "dimensions": 256},
        {"inputText": "two", "normalize": True, "dimensions": 256},
    ]
    assert bedrock.sent[0]["url"].endswith("/model/amazon.titan-embed-text-v2%3A0/invoke")
    with pytest.raises(ProviderRejected):
        adapter.embed(EmbeddingRequest("amazon.titan-embed-text-v2:0", ["x"], dimensions=300))


def test_cohere_batch_input_type_and_token_header() -> None:
    bedrock = Bedrock(
        [
            (
                200,
                {
                    "id": "e1",
                    "embeddings": [[0.1, 0.2], [0.3, 0.4]],
                    "texts": ["a", "b"],
                    "response_type": "embeddings_floats",
                },
                {"X-Amzn-Bedrock-Input-Token-Count": "11"},
            ),
            (200, {"embeddings": {"float": [[0.5, 0.5]]}}, {}),
        ]
    )
    adapter = BedrockEmbeddings(client=bedrock.client)
    assert adapter.batch_limit("cohere.embed-english-v3") == 96
    assert adapter.input_limit("us.cohere.embed-multilingual-v3").max_chars == 2048
    reply = adapter.embed(EmbeddingRequest("cohere.embed-english-v3", ["a", "b"], input_type="query"))
    assert reply.vectors == [[0.1, 0.2], [0.3, 0.4]]
    assert reply.prompt_tokens == 11
    assert bedrock.sent[0]["body"] == {"texts": ["a", "b"], "input_type": "search_query", "truncate": "NONE"}
    second = adapter.embed(EmbeddingRequest("cohere.embed-multilingual-v3", ["hello world"]))
    assert second.vectors == [[0.5, 0.5]]
    assert second.prompt_tokens == 2  # no header: Parley's estimate
    assert bedrock.sent[1]["body"]["input_type"] == "search_document"


@pytest.mark.parametrize(
    ("status", "code", "kind", "retryable"),
    [
        (429, "ThrottlingException", ProviderRateLimited, True),
        (400, "ValidationException", ProviderRejected, False),
        (503, "ServiceUnavailableException", ProviderError, True),
        (403, "AccessDeniedException", ProviderError, False),
    ],
)
def test_bedrock_errors_map_like_the_chat_adapter(
    status: int, code: str, kind: type[ProviderError], retryable: bool
) -> None:
    bedrock = Bedrock([(status, {"message": "no"}, {"x-amzn-ErrorType": f"{code}:http://internal"})])
    with pytest.raises(kind) as caught:
        BedrockEmbeddings(client=bedrock.client).embed(EmbeddingRequest("cohere.embed-english-v3", ["a"]))
    assert caught.value.retryable is retryable


def test_a_chat_model_is_not_an_embedding_model() -> None:
    assert family("us.amazon.titan-embed-text-v2:0") == "titan-v2"
    assert family("arn:aws:bedrock:us-east-1::foundation-model/cohere.embed-english-v3") == "cohere"
    with pytest.raises(ProviderRejected):
        family("anthropic.claude-3-5-haiku-20241022-v1:0")
