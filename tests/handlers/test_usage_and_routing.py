"""Metering, audit and provider routing through the completion and operations handlers."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from parley.domain.chat import Usage
from parley.domain.principal import Principal
from parley.providers.pricing import cost_usd, price_for
from tests.conftest import PROVIDER_KEYS
from tests.handlers import upstream
from tests.handlers.api import Api

OWNER = Principal("org_a", "proj_a", "key_owner", ("*",))
OTHER_KEY = Principal("org_a", "proj_a", "key_other", ("*",))
PROVIDER_KEY = PROVIDER_KEYS[2]


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def complete(api: Api, text: str, principal: Principal | None = None, **fields: Any) -> Any:
    body = {"model": "echo", "messages": [{"role": "user", "content": text}], **fields}
    return api.call("completions_create", body, principal=principal)


def test_usage_after_three_echo_calls_is_exactly_their_token_sums(api: Api) -> None:
    replies = [complete(api, "one two three"), complete(api, "four, five!"), complete(api, "six", OTHER_KEY)]
    assert all(r.status == 200 for r in replies)
    usages = [r.body["usage"] for r in replies]
    report = api.call("usage_get").body
    assert report["group_by"] == "model"
    (echo,) = report["data"]
    assert echo["model"] == "echo"
    assert echo["requests"] == 3
    assert echo["prompt_tokens"] == sum(u["prompt_tokens"] for u in usages)
    assert echo["completion_tokens"] == sum(u["completion_tokens"] for u in usages)
    assert echo["total_tokens"] == sum(u["total_tokens"] for u in usages)
    assert echo["cost_usd"] == 0.0  # echo is priced at zero, not unknown
    by_key = {row["key_id"]: row["requests"] for row in api.call("usage_get", query={"group_by": "key"}).body["data"]}
    assert by_key == {"key_owner": 2, "key_other": 1}


def test_usage_range_is_validated(api: Api) -> None:
    assert api.call("usage_get", query={"start_date": "2026-11-20", "end_date": "2026-11-01"}).status == 400
    assert api.call("usage_get", query={"start_date": "2026-01-01", "end_date": "2026-12-31"}).status == 400
    assert api.call("usage_get", query={"start_date": "yesterday"}).body["error"]["param"] == "start_date"
    empty = api.call("usage_get", query={"start_date": "2020-01-01", "end_date": "2020-01-31"}).body
    assert empty["data"] == []
    assert empty["totals"]["cost_usd"] is None


def test_every_call_is_audited_with_outcome_and_no_bodies(api: Api) -> None:
    complete(api, "confidential text")
    complete(api, "x", model="no-such-model")  # refused before any model call: not a model call
    streamed = complete(api, "streamed words", stream=True)
    assert streamed.status == 200
    page = api.call("audit_events_list", query={"limit": "1"}).body
    assert len(page["data"]) == 1
    assert page["has_more"] is True
    second = api.call("audit_events_list", query={"cursor": page["next_cursor"]}).body
    events = page["data"] + second["data"]
    assert len(events) == 2
    assert {e["outcome"] for e in events} == {"succeeded"}
    assert all(e["key_id"] == "key_owner" and e["route"] == "POST /v1/chat/completions" for e in events)
    assert all(e["request_id"] and e["latency_ms"] >= 0 and e["status"] == 200 for e in events)
    assert events[0]["time"] >= events[1]["time"]  # newest first
    assert "confidential" not in json.dumps(events)


def openai_reply(content: str) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": 1000,
                "completion_tokens": 200,
                "total_tokens": 1200,
                "prompt_tokens_details": {"cached_tokens": 400},
            },
        },
    )


def test_routing_by_provider_name_id_and_default_with_retries_and_no_key_leaks(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    script = [
        httpx.Response(429, json={"error": {"message": "slow down"}}, headers={"retry-after": "0"}),
        httpx.Response(429, json={"error": {"message": "slow down"}}, headers={"retry-after": "0"}),
        openai_reply("by name"),
        openai_reply("by id"),
        openai_reply("by default"),
    ]
    seen = upstream.install(monkeypatch, script)
    created = api.call(
        "providers_create",
        {"type": "openai", "name": "oa", "api_key": PROVIDER_KEY, "default_model": "gpt-4o-mini", "is_default": True},
    )
    provider_id = created.body["id"]
    responses = [created]

    by_name = complete(api, "hi", model="oa/gpt-4o-mini")  # 429, 429, 200: succeeds
    responses.append(by_name)
    assert (by_name.status, by_name.body["choices"][0]["message"]["content"]) == (200, "by name")
    assert len(seen) == 3
    assert seen[-1].headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert json.loads(seen[-1].content)["model"] == "gpt-4o-mini"

    by_id = api.call("completions_create", {"provider_id": provider_id, "messages": [{"role": "user", "content": "x"}]})
    responses.append(by_id)
    assert by_id.body["choices"][0]["message"]["content"] == "by id"
    assert by_id.body["model"] == "gpt-4o-mini"  # the provider's default_model

    by_default = complete(api, "x", model="gpt-4o-mini")
    responses.append(by_default)
    assert by_default.body["choices"][0]["message"]["content"] == "by default"

    report = api.call("usage_get").body
    row = next(r for r in report["data"] if r["model"] == "gpt-4o-mini")
    assert row["cached_tokens"] == 1200
    expected = 3 * cost_usd("gpt-4o-mini", Usage.of(1000, 200, 400))  # type: ignore[operator]
    assert row["cost_usd"] == pytest.approx(float(expected))
    audit = api.call("audit_events_list").body["data"]
    assert max(e["tries"] for e in audit) == 3
    responses += [api.call("providers_list"), api.call("providers_get", path={"provider_id": provider_id})]

    everything = json.dumps([r.body for r in responses]) + caplog.text
    assert PROVIDER_KEY not in everything
    assert PROVIDER_KEY[-4:] in json.dumps(created.body)  # only the last four, by design


def test_unknown_model_without_providers_is_404_and_fallbacks_take_over(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = complete(api, "x", model="gpt-4o")
    assert (refused.status, refused.body["error"]["code"], refused.body["error"]["param"]) == (
        404,
        "model_not_found",
        "model",
    )
    assert complete(api, "x", provider_id="aip_01JZ00000000000000000000AA").body["error"]["param"] == "provider_id"

    down = [httpx.Response(503, json={"error": {"message": "down"}}) for _ in range(3)]
    seen = upstream.install(monkeypatch, down)
    monkeypatch.setattr("parley.providers.resilient.RetryPolicy.base_delay", 0.0)
    backup = api.call("providers_create", {"type": "echo", "name": "backup"}).body
    primary = api.call(
        "providers_create",
        {
            "type": "openai",
            "name": "primary",
            "api_key": "k",
            "fallbacks": [{"provider_id": backup["id"], "model": "echo"}],
        },
    ).body
    reply = complete(api, "rescued by the fallback", provider_id=primary["id"], model="gpt-4o")
    assert reply.status == 200
    assert reply.body["choices"][0]["message"]["content"] == "rescued by the fallback"
    assert reply.body["model"] == "echo"
    assert len(seen) == 3


def test_prices_match_dated_and_regional_variants() -> None:
    assert price_for("gpt-4o-mini-2024-07-18") == price_for("gpt-4o-mini")
    assert price_for("gpt-4o-2024-08-06") == price_for("gpt-4o")
    assert price_for("us.anthropic.claude-3-5-sonnet-20241022-v2:0") == price_for("claude-3-5-sonnet")
    assert price_for("my-finetune") is None
    assert cost_usd("my-finetune", Usage.of(10, 10)) is None
    assert float(cost_usd("gpt-4o", Usage.of(1_000_000, 1_000_000, 500_000))) == pytest.approx(0.625 + 1.25 + 10)  # type: ignore[arg-type]


def test_a_stream_that_breaks_after_the_first_token_ends_with_an_error_chunk_and_is_audited_failed(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = upstream.install(monkeypatch, [upstream.chunk_then_drop("Hel")])
    provider = api.call("providers_create", {"type": "openai", "name": "flaky", "api_key": "k"}).body
    reply = complete(api, "x", provider_id=provider["id"], model="gpt-4o-mini", stream=True)
    assert reply.status == 200
    events = [line[6:] for line in reply.body.splitlines() if line.startswith("data: ")]
    assert json.loads(events[1])["choices"][0]["delta"]["content"] == "Hel"
    assert json.loads(events[-1])["error"]["type"] == "provider_error"
    assert "[DONE]" not in events
    assert len(seen) == 1  # no retry once a token went out
    (audit,) = api.call("audit_events_list").body["data"]
    assert (audit["outcome"], audit["status"], audit["error_code"]) == ("failed", 502, "provider_error")
