"""The built-in echo model: deterministic, honours stop and max_tokens, streams word by word."""

from __future__ import annotations

from parley.domain.chat import ChatMessage
from parley.domain.tokens import estimate_messages, estimate_text
from parley.providers.base import Finish, ModelRequest, TextDelta
from parley.providers.echo import EchoProvider


def request(text: str, **kwargs: object) -> ModelRequest:
    messages = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content=text)]
    return ModelRequest(model="echo", messages=messages, **kwargs)  # type: ignore[arg-type]


def test_reply_is_the_last_user_message_with_usage() -> None:
    reply = EchoProvider().complete(request("Hello there, Parley!"))
    assert reply.content == "Hello there, Parley!"
    assert reply.finish_reason == "stop"
    assert reply.usage.completion_tokens == estimate_text("Hello there, Parley!") == 5
    assert reply.usage.prompt_tokens == estimate_messages(["Be brief.", "Hello there, Parley!"])
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_stop_sequence_cuts_the_reply() -> None:
    assert EchoProvider().complete(request("one two STOP three", stop=["STOP"])).content == "one two"


def test_max_tokens_truncates_with_finish_reason_length() -> None:
    reply = EchoProvider().complete(request("one two three four", max_tokens=2))
    assert (reply.content, reply.finish_reason, reply.usage.completion_tokens) == ("one two", "length", 2)


def test_stream_yields_each_word_then_finish_pausing_between_words() -> None:
    pauses: list[float] = []
    events = list(EchoProvider(delay_ms=200, sleep=pauses.append).stream(request("a b  c")))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["a", " b", "  c"]
    assert isinstance(events[-1], Finish)
    assert events[-1].usage.completion_tokens == 3
    assert pauses == [0.2, 0.2]


def test_stream_and_complete_agree() -> None:
    provider = EchoProvider(delay_ms=0)
    text = "".join(e.text for e in provider.stream(request("It's 5 o'clock.")) if isinstance(e, TextDelta))
    assert text == provider.complete(request("It's 5 o'clock.")).content


def test_delay_comes_from_settings(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from parley.settings import set_settings

    monkeypatch.setenv("PARLEY_ECHO_DELAY_MS", "50")
    set_settings(None)
    pauses: list[float] = []
    list(EchoProvider(sleep=pauses.append).stream(request("x y")))
    assert pauses == [0.05]
