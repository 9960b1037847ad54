"""Issue 17 (items 1 and 2): OpenAI's models routes and every Chat Completions request field,
through the handlers on moto. Every body and chunk is validated strictly with the openai SDK's own
types; upstreams are httpx MockTransports (OpenAI, Anthropic wire formats) and a stubbed Bedrock client."""

from __future__ import annotations

import json
import typing
from typing import Any

import httpx
import pytest
from openai.pagination import SyncPage
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, completion_create_params

from parley.api.routing import load_route_table
from parley.domain.chat import ChatCompletionRequest
from parley.domain.principal import Principal
from parley.providers import bedrock
from tests.handlers import upstream
from tests.handlers.api import Api, Reply
from tests.handlers.test_route_permissions import TABLE

OWNER = Principal("org_oai", "proj_oai", "key_oai", ("*",))
USER = [{"role": "user", "content": "Hello there"}]
DROPPED = "parley-dropped-params"
_ = load_route_table

# Every field of the SDK's create params, with a value the SDK's types allow and that asks for no
# change of the result's shape (n=1, logprobs false, text only).
EVERY_FIELD: dict[str, Any] = {
    "frequency_penalty": 0.1,
    "function_call": "auto",
    "functions": [{"name": "lookup", "parameters": {"type": "object", "properties": {}}}],
    "logit_bias": {"50256": -100},
    "logprobs": False,
    "max_completion_tokens": 50,
    "max_tokens": 50,
    "metadata": {"team": "support"},
    "modalities": ["text"],
    "moderation": {"model": "omni-moderation-latest"},
    "n": 1,
    "parallel_tool_calls": True,
    "prediction": {"type": "content", "content": "Hello"},
    "presence_penalty": 0.1,
    "prompt_cache_key": "k1",
    "prompt_cache_options": {"mode": "implicit"},
    "prompt_cache_retention": "24h",
    "reasoning_effort": "low",
    "response_format": {"type": "text"},
    "safety_identifier": "user-hash",
    "seed": 7,
    "service_tier": "default",
    "stop": ["\n\n"],
    "store": False,
    "temperature": 0.5,
    "tool_choice": "none",
    "tools": [{"type": "function", "function": {"name": "lookup"}}],
    "top_p": 0.9,
    "user": "u1",
    "verbosity": "low",
    "web_search_options": {"search_context_size": "low"},
}


def sdk_fields() -> set[str]:
    names: set[str] = set()
    for params in typing.get_args(completion_create_params.CompletionCreateParams):
        names |= set(typing.get_type_hints(params))
    return names


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def complete(api: Api, **fields: Any) -> Reply:
    return api.call("completions_create", {"model": "echo", "messages": USER, **fields})


def chunks(reply: Reply) -> list[ChatCompletionChunk]:
    lines = [line[len("data: ") :] for line in reply.body.split("\n\n") if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [ChatCompletionChunk.model_validate(json.loads(line), strict=True) for line in lines[:-1]]


def provider(api: Api, **fields: Any) -> dict[str, Any]:
    created = api.call("providers_create", fields)
    assert created.status == 201, created.body
    return dict(created.body)


def route(function: str, path: str) -> Any:
    return next(r for r in TABLE.routes if r.function == function and r.path == path)


# -- the field list ----------------------------------------------------------------------------


def test_parley_knows_every_field_of_the_installed_sdks_create_params() -> None:
    """Fails when the openai SDK grows a Chat Completions field Parley does not know."""
    unknown = sdk_fields() - set(ChatCompletionRequest.model_fields)
    assert not unknown, f"add {sorted(unknown)} to parley.domain.chat.SamplingParams"
    # the shape-changing audio and top_logprobs are exercised in their own test
    assert sdk_fields() - {"model", "messages", "stream"} == set(EVERY_FIELD) | {
        "stream_options",
        "audio",
        "top_logprobs",
    }


def test_every_field_is_accepted_and_what_echo_does_not_honour_is_named(api: Api) -> None:
    reply = complete(api, **EVERY_FIELD)
    assert reply.status == 200, reply.body
    ChatCompletion.model_validate(reply.body, strict=True)
    dropped = set(reply.headers[DROPPED].split(","))
    # echo honours max_tokens, stop, tools and tool_choice (functions became tools)
    assert dropped == set(EVERY_FIELD) - {"max_tokens", "max_completion_tokens", "stop", "tools", "tool_choice"} - {
        "functions",
        "function_call",
        "n",
        "logprobs",
        "modalities",
    }
    assert reply.body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    assert reply.body["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


def test_a_plain_echo_call_drops_nothing_and_streams_strict_chunks(api: Api) -> None:
    reply = complete(api, stream=True, stream_options={"include_usage": True, "include_obfuscation": False})
    assert reply.status == 200
    assert DROPPED not in reply.headers
    got = chunks(reply)
    usage = got[-1].usage
    assert usage is not None and usage.completion_tokens_details is not None and usage.prompt_tokens_details


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"logprobs": True, "top_logprobs": 3}, "logprobs"),
        ({"modalities": ["text", "audio"], "audio": {"format": "wav", "voice": "alloy"}}, "audio"),
    ],
)
def test_a_field_that_changes_the_results_shape_is_a_400_naming_it_and_the_provider(
    api: Api, fields: dict[str, Any], param: str
) -> None:
    for stream in (False, True):
        reply = complete(api, stream=stream, **fields)
        assert reply.status == 400
        error = (json.loads(reply.body) if isinstance(reply.body, str) else reply.body)["error"]
        assert (error["param"], error["code"]) == (param, "unsupported_parameter")
        assert "echo" in error["message"]


def test_the_sdks_message_model_dump_goes_back_as_history(api: Api) -> None:
    first = ChatCompletion.model_validate(complete(api).body, strict=True)
    history = [*USER, first.choices[0].message.model_dump(), {"role": "user", "content": "again"}]
    assert "annotations" in history[1] and history[1]["audio"] is None and history[1]["function_call"] is None
    reply = api.call("completions_create", {"model": "echo", "messages": history})
    assert reply.status == 200, reply.body
    assert reply.body["choices"][0]["message"]["content"] == "again"


@pytest.mark.parametrize(
    ("part", "kind"),
    [
        ({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}, "input_audio"),
        ({"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBER", "filename": "a.pdf"}}, "file"),
    ],
)
def test_a_content_part_the_provider_cannot_take_is_a_400_naming_part_and_provider(
    api: Api, part: dict[str, Any], kind: str
) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "listen"}, part]}]
    reply = api.call("completions_create", {"model": "echo", "messages": messages})
    assert reply.status == 400
    assert reply.body["error"]["code"] == "unsupported_content_part"
    assert kind in reply.body["error"]["message"] and "echo" in reply.body["error"]["message"]
    assert reply.body["error"]["param"] == "messages[0].content"


def test_an_unknown_model_is_404_model_not_found(api: Api) -> None:
    reply = complete(api, model="gpt-nope")
    assert (reply.status, reply.body["error"]["code"], reply.body["error"]["type"]) == (
        404,
        "model_not_found",
        "not_found_error",
    )


def test_the_per_chat_route_accepts_what_the_main_route_accepts(api: Api) -> None:
    echo = provider(api, type="echo", name="echo-main", default_model="echo")
    chat = api.call("chats_create", {"ai_provider_id": echo["id"], "name": "Support"}).body
    body = {"model": "whatever", "messages": USER, "metadata": {"a": "b"}, "store": True, "logprobs": False}
    for path in ("/v1/chats/{chat_id}/completions", "/v1/chats/{chat_id}/chat/completions"):
        reply = api.call("chats_complete", body, path={"chat_id": chat["id"]}, route=route("chats_complete", path))
        assert reply.status == 200, reply.body
        ChatCompletion.model_validate(reply.body, strict=True)
        assert set(reply.headers[DROPPED].split(",")) == {"metadata", "store"}


# -- providers: forwarded, mapped, dropped -----------------------------------------------------


def openai_completion(fingerprint: str = "fp_1") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o",
            "system_fingerprint": fingerprint,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": 3,
                "completion_tokens": 1,
                "total_tokens": 4,
                "completion_tokens_details": {"reasoning_tokens": 1},
            },
        },
    )


def test_an_openai_compatible_provider_gets_every_field_as_sent(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = upstream.install(monkeypatch, [openai_completion()])
    provider(api, type="openai", name="oai", api_key="sk-test-0000000000", base_url="https://api.openai.com/v1")
    fields = {k: v for k, v in EVERY_FIELD.items() if k not in ("functions", "function_call")}
    reply = complete(api, model="oai/gpt-4o", **fields)
    assert reply.status == 200, reply.body
    assert DROPPED not in reply.headers
    sent = json.loads(seen[0].content)
    for name in ("reasoning_effort", "logit_bias", "service_tier", "prompt_cache_key", "verbosity", "prediction"):
        assert sent[name] == EVERY_FIELD[name]
    assert sent["metadata"] == {"team": "support"} and sent["store"] is False
    completion = ChatCompletion.model_validate(reply.body, strict=True)
    assert completion.system_fingerprint == "fp_1"
    assert completion.usage is not None and completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 1


def test_an_openai_compatible_provider_refuses_logprobs_before_calling(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = upstream.install(monkeypatch, [])
    provider(api, type="openai", name="oai", api_key="sk-test-0000000000", base_url="https://api.openai.com/v1")
    reply = complete(api, model="oai/gpt-4o", logprobs=True)
    assert reply.status == 400 and reply.body["error"]["param"] == "logprobs"
    assert "openai" in reply.body["error"]["message"] and not seen


def anthropic_message() -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "Hi"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 5},
        },
    )


def test_anthropic_maps_reasoning_effort_and_safety_identifier_and_names_the_rest(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = upstream.install(monkeypatch, [anthropic_message()])
    provider(api, type="anthropic", name="claude", api_key="sk-ant-test-000000")
    reply = complete(
        api,
        model="claude/claude-sonnet-4-5",
        reasoning_effort="medium",
        max_tokens=10000,
        temperature=0.3,
        safety_identifier="hash-1",
        seed=3,
        stop=["END"],
    )
    assert reply.status == 200, reply.body
    sent = json.loads(seen[0].content)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert sent["max_tokens"] == 10000 and "temperature" not in sent
    assert sent["metadata"] == {"user_id": "hash-1"} and sent["stop_sequences"] == ["END"]
    assert set(reply.headers[DROPPED].split(",")) == {"temperature", "seed"}
    assert ChatCompletion.model_validate(reply.body, strict=True).choices[0].message.content == "Hi"


def test_anthropic_refuses_an_audio_part(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = upstream.install(monkeypatch, [])
    provider(api, type="anthropic", name="claude", api_key="sk-ant-test-000000")
    part = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    reply = api.call(
        "completions_create", {"model": "claude/claude-x", "messages": [{"role": "user", "content": [part]}]}
    )
    assert reply.status == 400 and "anthropic" in reply.body["error"]["message"] and not seen


class StubBedrock:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def converse(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4},
        }


def test_bedrock_maps_metadata_service_tier_and_thinking_and_names_the_rest(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = StubBedrock()
    monkeypatch.setattr(bedrock.BedrockProvider, "_runtime", lambda self: stub)
    provider(api, type="bedrock", name="br")
    reply = complete(
        api,
        model="br/us.anthropic.claude-sonnet-4-5-v1:0",
        metadata={"team": "support"},
        service_tier="flex",
        reasoning_effort="low",
        user="u1",
        verbosity="low",
    )
    assert reply.status == 200, reply.body
    params = stub.calls[0]
    assert params["requestMetadata"] == {"team": "support"}
    assert params["serviceTier"] == {"type": "flex"}
    assert params["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert params["inferenceConfig"]["maxTokens"] > 2048
    assert set(reply.headers[DROPPED].split(",")) == {"user", "verbosity"}
    ChatCompletion.model_validate(reply.body, strict=True)


# -- models ------------------------------------------------------------------------------------


def models_page(reply: Reply) -> SyncPage[Model]:
    assert reply.status == 200, reply.body
    return SyncPage[Model].model_validate(reply.body, strict=True)


def test_models_lists_echo_and_each_providers_models(api: Api) -> None:
    assert [m.id for m in models_page(api.call("models_list")).data] == ["echo"]
    main = provider(api, type="echo", name="main", default_model="echo")
    other = provider(api, type="openai", name="oai", api_key="sk-test-0000000000", default_model="gpt-4o")
    api.call(
        "providers_update",
        {"fallbacks": [{"provider_id": other["id"], "model": "gpt-4o-mini"}]},
        path={"provider_id": main["id"]},
    )
    ids = {m.id for m in models_page(api.call("models_list")).data}
    # main is the project's default (the first provider): only its models are also listed bare
    assert ids == {"echo", "main/echo", "oai/gpt-4o", "oai/gpt-4o-mini"}
    got = api.call("models_get", path={"model_id": "oai%2Fgpt-4o"})
    assert got.status == 200
    model = Model.model_validate(got.body, strict=True)
    assert (model.id, model.owned_by) == ("oai/gpt-4o", "oai")
    assert Model.model_validate(api.call("models_get", path={"model_id": "echo"}).body, strict=True).created == 0
    missing = api.call("models_get", path={"model_id": "oai%2Fnope"})
    assert (missing.status, missing.body["error"]["code"]) == (404, "model_not_found")


def test_a_listed_model_is_one_a_completion_can_use(api: Api) -> None:
    provider(api, type="echo", name="main", default_model="echo")
    for model in models_page(api.call("models_list")).data:
        assert complete(api, model=model.id).status == 200, model.id


def test_a_chats_base_url_lists_the_chats_model(api: Api) -> None:
    echo = provider(api, type="echo", name="main", default_model="echo")
    chat = api.call("chats_create", {"ai_provider_id": echo["id"], "name": "Support"}).body
    listed = api.call(
        "models_list", path={"chat_id": chat["id"]}, route=route("models_list", "/v1/chats/{chat_id}/models")
    )
    assert {m.id for m in models_page(listed).data} == {"echo", "main/echo"}
    one = api.call(
        "models_get",
        path={"chat_id": chat["id"], "model_id": "main%2Fecho"},
        route=route("models_get", "/v1/chats/{chat_id}/models/{model_id}"),
    )
    assert Model.model_validate(one.body, strict=True).id == "main/echo"
    gone = api.call(
        "models_list",
        path={"chat_id": "cht_01JZ00000000000000000000ZZ"},
        route=route("models_list", "/v1/chats/{chat_id}/models"),
    )
    assert gone.status == 404
