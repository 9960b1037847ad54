"""POST /v1/embeddings through its handler: the built-in local model, stored OpenAI-compatible
providers (a scripted upstream), OpenAI's body (floats and base64), errors, metering and audit."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import httpx
import pytest

from parley.domain.principal import Principal
from parley.providers.tokenizer import _encoding
from tests.conftest import PROVIDER_KEYS
from tests.handlers import upstream
from tests.handlers.api import Api

OWNER = Principal("org_e", "proj_e", "key_owner", ("*",))
PROVIDER_KEY = PROVIDER_KEYS[0]


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def embed(api: Api, **body: Any) -> Any:
    return api.call("embeddings_create", {"model": "local", **body})


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_local_model_answers_openais_list_with_unit_vectors_in_input_order(api: Api) -> None:
    texts = ["How do I get a refund?", "Refunds are paid within 30 days.", "The office cat is orange."]
    reply = embed(api, input=texts)
    assert reply.status == 200, reply.body
    body = reply.body
    assert body["object"] == "list"
    assert body["model"] == "local"
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 256 for d in body["data"])
    vectors = [d["embedding"] for d in body["data"]]
    assert all(math.isclose(dot(v, v), 1.0, rel_tol=1e-6) for v in vectors)
    # meaningful: the refund question is nearer the refund answer than the cat
    assert dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2])
    assert body["usage"]["prompt_tokens"] > 0
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"]
    # deterministic, whatever else is in the batch
    again = embed(api, input=[texts[2], texts[0]]).body
    assert again["data"][1]["embedding"] == vectors[0]
    single = embed(api, input=texts[1]).body
    assert single["data"][0]["embedding"] == vectors[1]


def test_dimensions_shorten_the_vector_and_keep_it_unit(api: Api) -> None:
    body = embed(api, input="Billing and refunds", dimensions=64).body
    vector = body["data"][0]["embedding"]
    assert len(vector) == 64
    assert math.isclose(dot(vector, vector), 1.0, rel_tol=1e-6)
    assert embed(api, input="x", dimensions=257).status == 400


def test_base64_is_little_endian_float32_of_the_same_vector(api: Api) -> None:
    floats = embed(api, input=["Refunds"]).body["data"][0]["embedding"]
    encoded = embed(api, input=["Refunds"], encoding_format="base64").body["data"][0]["embedding"]
    raw = base64.b64decode(encoded)
    assert len(raw) == 4 * 256
    decoded = struct.unpack("<256f", raw)
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(decoded, floats, strict=True))


def test_token_arrays_are_decoded_with_tiktoken(api: Api) -> None:
    text = "Refunds are paid within 30 days."
    ids = _encoding("cl100k_base").encode_ordinary(text)
    as_text = embed(api, input=[text]).body["data"][0]["embedding"]
    assert embed(api, input=ids).body["data"][0]["embedding"] == as_text
    assert embed(api, input=[ids, ids]).body["data"][1]["embedding"] == as_text
    refused = embed(api, input=[10_000_000])
    assert refused.status == 400
    assert refused.body["error"]["code"] == "invalid_token"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"input": []}, "invalid_request"),
        ({"input": ""}, "invalid_request"),
        ({"input": ["ok", ""]}, "invalid_request"),
        ({"input": ["x"] * 2049}, "invalid_request"),
        ({"input": "word " * 9000}, "input_too_long"),
        ({"input": "x", "encoding_format": "int8"}, "invalid_request"),
        ({"input": "x", "dimensions": 0}, "invalid_request"),
    ],
)
def test_bad_inputs_are_400(api: Api, body: dict[str, Any], code: str) -> None:
    reply = embed(api, **body)
    assert reply.status == 400, reply.body
    assert reply.body["error"]["code"] == code
    assert reply.body["error"]["param"] in ("input", "encoding_format", "dimensions")


def test_unknown_model_is_404_model_not_found(api: Api) -> None:
    reply = api.call("embeddings_create", {"model": "text-embedding-3-small", "input": "hi"})
    assert reply.status == 404
    assert reply.body["error"]["code"] == "model_not_found"
    assert reply.body["error"]["param"] == "model"


def test_a_provider_without_embeddings_is_400_naming_its_type(api: Api) -> None:
    api.call("providers_create", {"type": "echo", "name": "talker", "default_model": "echo", "is_default": True})
    named = api.call("embeddings_create", {"model": "talker/anything", "input": "hi"})
    assert named.status == 400
    assert named.body["error"]["code"] == "provider_cannot_embed"
    assert "'echo'" in named.body["error"]["message"]
    default = api.call("embeddings_create", {"model": "text-embedding-3-small", "input": "hi"})
    assert default.status == 404
    assert "'echo'" in default.body["error"]["message"]


def openai_embeddings(vectors: list[list[float]], tokens: int, *, shuffled: bool = False) -> httpx.Response:
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    if shuffled:
        data.reverse()
    return httpx.Response(
        200,
        json={"object": "list", "data": data, "model": "text-embedding-3-small", "usage": {"prompt_tokens": tokens}},
    )


def test_a_stored_openai_provider_embeds_with_retries_and_is_metered_and_priced(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = upstream.install(
        monkeypatch,
        [
            httpx.Response(503, json={"error": {"message": "overloaded"}}),
            openai_embeddings([[1.0, 0.0], [0.0, 1.0]], 7, shuffled=True),
        ],
    )
    created = api.call("providers_create", {"type": "openai", "name": "oa", "api_key": PROVIDER_KEY})
    assert created.status == 201, created.body
    reply = api.call(
        "embeddings_create",
        {"model": "oa/text-embedding-3-small", "input": ["a", "b"], "dimensions": 2, "user": "u9"},
    )
    assert reply.status == 200, reply.body
    assert [d["embedding"] for d in reply.body["data"]] == [[1.0, 0.0], [0.0, 1.0]]  # by index, not wire order
    assert reply.body["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
    assert len(seen) == 2  # the 503 was retried
    sent = json.loads(seen[-1].content)
    assert sent == {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "encoding_format": "float",
        "dimensions": 2,
        "user": "u9",
    }
    assert str(seen[-1].url) == "https://api.openai.com/v1/embeddings"
    assert seen[-1].headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    (row,) = api.call("usage_get").body["data"]
    assert row["model"] == "text-embedding-3-small"
    assert row["prompt_tokens"] == 7
    assert row["completion_tokens"] == 0
    assert math.isclose(row["cost_usd"], 7 * 0.02 / 1_000_000)
    (event,) = api.call("audit_events_list").body["data"]
    assert event["route"] == "POST /v1/embeddings"
    assert event["outcome"] == "succeeded"
    assert event["tries"] == 2
    assert event["provider_id"] == created.body["id"]


def test_a_failed_upstream_is_502_and_audited_as_failed(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    upstream.install(monkeypatch, [httpx.Response(401, json={"error": {"message": f"bad key {PROVIDER_KEY}"}})])
    api.call("providers_create", {"type": "openai", "name": "oa", "api_key": PROVIDER_KEY, "is_default": True})
    reply = api.call("embeddings_create", {"model": "text-embedding-3-small", "input": "hi"})
    assert reply.status == 502
    assert reply.body["error"]["code"] == "provider_auth_failed"
    assert PROVIDER_KEY not in json.dumps(reply.body)
    (event,) = api.call("audit_events_list").body["data"]
    assert (event["outcome"], event["status"], event["tries"]) == ("failed", 502, 1)


def test_an_input_over_8192_tokens_of_an_openai_model_is_refused_before_any_call(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = upstream.install(monkeypatch, [])
    api.call("providers_create", {"type": "openai", "name": "oa", "api_key": PROVIDER_KEY, "is_default": True})
    reply = api.call("embeddings_create", {"model": "text-embedding-3-small", "input": ["ok", "word " * 8200]})
    assert reply.status == 400
    assert reply.body["error"]["code"] == "input_too_long"
    assert "Input 1" in reply.body["error"]["message"]
    assert seen == []
    assert api.call("audit_events_list").body["data"] == []


def test_a_response_over_what_lambda_can_carry_is_413(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from parley.api import embeddings as edge

    monkeypatch.setattr(edge, "MAX_RESPONSE_BYTES", 5_000)
    reply = embed(api, input=["one", "two", "three"])
    assert reply.status == 413
    assert reply.body["error"]["code"] == "response_too_large"
    assert embed(api, input=["one"], encoding_format="base64").status == 200


def test_provider_id_picks_the_provider_and_one_without_embeddings_is_named(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = upstream.install(monkeypatch, [openai_embeddings([[0.25]], 1)])
    oa = api.call("providers_create", {"type": "openai", "name": "oa", "api_key": PROVIDER_KEY}).body
    echo = api.call("providers_create", {"type": "echo", "name": "talker"}).body
    reply = api.call("embeddings_create", {"model": "nomic-embed-text", "input": "hi", "provider_id": oa["id"]})
    assert reply.status == 200, reply.body
    assert json.loads(seen[0].content)["model"] == "nomic-embed-text"
    refused = api.call("embeddings_create", {"model": "x", "input": "hi", "provider_id": echo["id"]})
    assert (refused.status, refused.body["error"]["param"]) == (400, "provider_id")
    missing = api.call("embeddings_create", {"model": "x", "input": "hi", "provider_id": "aip_nope"})
    assert (missing.status, missing.body["error"]["code"]) == (400, "provider_not_found")
