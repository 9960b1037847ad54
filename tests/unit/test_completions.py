"""The completions service: OpenAI's exact response and chunk shapes, and its refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from parley.api import replies
from parley.domain.chat import ChatCompletionRequest
from parley.domain.errors import InvalidRequest, NotFound, ProviderError
from parley.domain.principal import Principal
from parley.domain.replies import ReplyEvent
from parley.providers.base import Finish, ModelRequest, TextDelta
from parley.providers.echo import EchoProvider
from parley.services import completions, registry

CALLER = Principal("org", "proj", "key", ("*",))
pytestmark = pytest.mark.usefixtures("aws")  # every call is metered into the usage table


def make(**fields: object) -> ChatCompletionRequest:
    body = {"model": "echo", "messages": [{"role": "user", "content": "Hi there"}], **fields}
    return ChatCompletionRequest.model_validate(body)


def events(reply: Iterator[ReplyEvent], request_id: str = "", *, include_usage: bool = False) -> list[object]:
    """The reply encoded as OpenAI chunks, each parsed back."""
    out: list[object] = []
    for chunk in replies.completion_chunks(reply, request_id, include_usage=include_usage):
        text = chunk.decode()
        assert text.startswith("data: ") and text.endswith("\n\n")
        payload = text[len("data: ") : -2]
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_completion_has_openais_shape() -> None:
    result = replies.completion_body(completions.create(CALLER, make())).model_dump()
    assert result["object"] == "chat.completion"
    assert result["id"].startswith("chatcmpl-")
    assert result["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi there", "refusal": None, "tool_calls": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert result["usage"]["total_tokens"] == result["usage"]["prompt_tokens"] + result["usage"]["completion_tokens"]


def test_stream_chunks_then_done() -> None:
    got = events(completions.stream(CALLER, make(stream=True)))
    assert got[-1] == "[DONE]"
    chunks = got[:-1]
    assert all(c["object"] == "chat.completion.chunk" and "usage" not in c for c in chunks)  # type: ignore[index]
    assert len({c["id"] for c in chunks}) == 1  # type: ignore[index]
    deltas = [c["choices"][0]["delta"] for c in chunks]  # type: ignore[index]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "Hi"}, {"content": " there"}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]


def test_include_usage_adds_a_final_usage_chunk() -> None:
    got = events(
        completions.stream(CALLER, make(stream=True, stream_options={"include_usage": True})), include_usage=True
    )
    *chunks, usage_chunk, done = got
    assert done == "[DONE]"
    assert all(c["usage"] is None for c in chunks)  # type: ignore[index]
    assert usage_chunk["choices"] == []  # type: ignore[index]
    assert usage_chunk["usage"]["completion_tokens"] == 2  # type: ignore[index]


def test_system_message_is_prepended_unless_one_leads(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[ModelRequest] = []
    provider = EchoProvider()
    monkeypatch.setattr(provider, "complete", lambda r: seen.append(r) or EchoProvider().complete(r))
    monkeypatch.setattr(registry, "EchoProvider", lambda: provider)
    completions.create(CALLER, make(system_message="Be kind."))
    assert [(m.role, m.text()) for m in seen[-1].messages] == [("system", "Be kind."), ("user", "Hi there")]
    completions.create(
        CALLER,
        make(
            system_message="ignored", messages=[{"role": "system", "content": "Own"}, {"role": "user", "content": "x"}]
        ),
    )
    assert [m.text() for m in seen[-1].messages] == ["Own", "x"]


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"model": "gpt-unknown"}, "model", "model_not_found"),
        ({"provider_id": "aip_nope"}, "provider_id", "provider_not_found"),
        ({"use_rag": True}, "index_id", "index_required"),
        ({"index_id": "idx_1"}, "index_id", "index_not_found"),
    ],
)
def test_refusals_name_the_field(fields: dict[str, object], param: str, code: str) -> None:
    with pytest.raises((InvalidRequest, NotFound)) as refused:
        completions.stream(CALLER, make(stream=True, **fields))  # refused before any byte is produced
    assert (refused.value.param, refused.value.code) == (param, code)


def test_echo_model_accepts_the_provider_prefix() -> None:
    assert replies.completion_body(completions.create(CALLER, make(model="echo/echo"))).model == "echo"


class Failing:
    name = "failing"

    def __init__(self, fail_after: int) -> None:
        self.fail_after = fail_after

    def models(self) -> tuple[str, ...]:
        return ("echo",)

    def honours(self, request: ModelRequest) -> frozenset[str]:
        return frozenset()

    def stream(self, request: ModelRequest) -> Iterator[TextDelta | Finish]:
        for i in range(3):
            if i == self.fail_after:
                raise ProviderError("upstream broke")
            yield TextDelta(f"w{i} ")


def test_provider_failure_before_first_token_raises_before_any_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "EchoProvider", lambda: Failing(0))
    with pytest.raises(ProviderError):  # raised by stream() itself: nothing was sent yet
        completions.stream(CALLER, make(stream=True))


def test_provider_failure_mid_stream_ends_with_an_error_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "EchoProvider", lambda: Failing(2))
    got = events(completions.stream(CALLER, make(stream=True), completions.CallContext(request_id="req-9")), "req-9")
    assert [c["choices"][0]["delta"].get("content") for c in got[:-1]] == ["", "w0 ", "w1 "]  # type: ignore[index]
    assert got[-1] == {
        "error": {
            "type": "provider_error",
            "code": "provider_error",
            "message": "upstream broke",
            "param": None,
            "request_id": "req-9",
        }
    }


@pytest.mark.parametrize(
    "body",
    [
        {"model": "echo", "messages": []},
        {"model": "echo"},
        {"messages": [{"role": "user", "content": "x"}]},
        {"model": "", "messages": [{"role": "user", "content": "x"}]},
        {"model": "echo", "messages": [{"role": "robot", "content": "x"}]},
        {"model": "echo", "messages": [{"role": "user"}]},
        {"model": "echo", "messages": [{"role": "tool", "content": "x"}]},
        {"model": "echo", "messages": [{"role": "assistant"}]},
        {"model": "echo", "messages": "hello"},
        {"model": 7, "messages": [{"role": "user", "content": "x"}]},
        {"model": "echo", "messages": [{"role": "user", "content": "x"}], "temperature": "1"},
        {"model": "echo", "messages": [{"role": "user", "content": "x"}], "temperature": 3},
        {"model": "echo", "messages": [{"role": "user", "content": "x"}], "n": 0},
        {"model": "echo", "messages": [{"role": "user", "content": "x"}], "stream": "yes"},
        {"model": "echo", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]},
        {"model": "echo", "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}},
        {"model": "echo", "messages": [{"role": "user", "content": "x"}], "unknown": 1},
    ],
)
def test_malformed_requests_fail_validation(body: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ChatCompletionRequest.model_validate(body)
