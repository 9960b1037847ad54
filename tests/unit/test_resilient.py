"""Retries before the first token only, backoff with jitter, Retry-After, fallback."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from parley.domain.chat import ChatMessage, Usage
from parley.domain.errors import ProviderError, ProviderRateLimited, ProviderRejected, ProviderTimeout
from parley.providers.base import Finish, ModelReply, ModelRequest, StreamEvent, TextDelta
from parley.providers.resilient import Resilient, RetryPolicy, Target

REQUEST = ModelRequest(model="m", messages=[ChatMessage(role="user", content="hi")])


class Scripted:
    """Fails with the scripted errors, in order, then answers."""

    name = "scripted"

    def __init__(self, failures: Sequence[ProviderError] = (), fail_mid_stream: bool = False) -> None:
        self.failures = list(failures)
        self.calls: list[str] = []
        self.fail_mid_stream = fail_mid_stream

    def models(self) -> tuple[str, ...]:
        return ()

    def honours(self, request: ModelRequest) -> frozenset[str]:
        return frozenset()

    def complete(self, request: ModelRequest) -> ModelReply:
        self.calls.append(request.model)
        if self.failures:
            raise self.failures.pop(0)
        return ModelReply(content=f"from {request.model}", finish_reason="stop", usage=Usage.of(1, 1))

    def stream(self, request: ModelRequest) -> Iterator[StreamEvent]:
        self.calls.append(request.model)
        if self.failures:
            raise self.failures.pop(0)
        yield TextDelta("one")
        if self.fail_mid_stream:
            raise ProviderError("dropped", retryable=True)
        yield Finish("stop", Usage.of(1, 1))


def resilient(*targets: Target, **policy: float) -> tuple[Resilient, list[float]]:
    waits: list[float] = []
    return Resilient(targets, RetryPolicy(**policy), sleep=waits.append, rng=lambda: 0.5), waits  # type: ignore[arg-type]


def test_429_429_200_succeeds_after_two_backoffs() -> None:
    provider = Scripted([ProviderRateLimited("busy"), ProviderRateLimited("busy")])
    runner, waits = resilient(Target(provider, "m"))
    reply, outcome = runner.complete(REQUEST)
    assert reply.content == "from m"
    assert outcome.tries == 3
    assert waits == [0.25, 0.5]  # full jitter (rng 0.5) of 0.5 s, then 1 s


def test_retry_after_is_honoured_and_a_long_one_is_not_waited_for() -> None:
    runner, waits = resilient(Target(Scripted([ProviderRateLimited("busy", retry_after=3)]), "m"))
    runner.complete(REQUEST)
    assert waits == [3]
    runner, waits = resilient(Target(Scripted([ProviderRateLimited("busy", retry_after=60)]), "m"))
    with pytest.raises(ProviderRateLimited) as refused:
        runner.complete(REQUEST)
    assert waits == []
    assert refused.value.headers["Retry-After"] == "60"


def test_backoff_is_capped() -> None:
    failures = [ProviderTimeout("slow") for _ in range(5)]
    runner, waits = resilient(Target(Scripted(failures), "m"), attempts=6, base_delay=1, max_delay=3)
    runner.complete(REQUEST)
    assert waits == [0.5, 1.0, 1.5, 1.5, 1.5]


def test_rejected_requests_are_neither_retried_nor_sent_elsewhere() -> None:
    first, second = Scripted([ProviderRejected("bad tools")]), Scripted()
    runner, waits = resilient(Target(first, "a"), Target(second, "b"))
    with pytest.raises(ProviderRejected):
        runner.complete(REQUEST)
    assert (first.calls, second.calls, waits) == (["a"], [], [])


def test_exhausted_retries_fall_back_to_the_next_target() -> None:
    down = Scripted([ProviderError("503", retryable=True) for _ in range(3)])
    backup = Scripted()
    runner, _ = resilient(Target(down, "a"), Target(backup, "b"))
    reply, outcome = runner.complete(REQUEST)
    assert (reply.content, outcome.target.model, outcome.tries) == ("from b", "b", 4)
    assert down.calls == ["a", "a", "a"]


def test_non_retryable_failures_skip_straight_to_the_fallback() -> None:
    bad_key = Scripted([ProviderError("401", code="provider_auth_failed")])
    runner, waits = resilient(Target(bad_key, "a"), Target(Scripted(), "b"))
    assert runner.complete(REQUEST)[1].target.model == "b"
    assert waits == []


def test_stream_retries_until_the_first_event_then_never() -> None:
    flaky = Scripted([ProviderError("reset", retryable=True)])
    runner, _ = resilient(Target(flaky, "m"))
    events, outcome = runner.stream(REQUEST)
    assert [type(e) for e in events] == [TextDelta, Finish]
    assert outcome.tries == 2

    dropping = Scripted(fail_mid_stream=True)
    runner, _ = resilient(Target(dropping, "m"), Target(Scripted(), "b"))
    events, _ = runner.stream(REQUEST)
    assert next(events) == TextDelta("one")
    with pytest.raises(ProviderError, match="dropped"):
        next(events)
    assert dropping.calls == ["m"]  # no second call, no fallback after tokens went out


def test_time_to_first_token_is_measured_from_the_first_try_to_the_first_event_for_all_and_by_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a provider that fails once (retried), and a clock at 10 s when the stream is asked for
    # and at 10.75 s once the first event came (the retry's wait included)
    from parley import metrics

    recorded: list[tuple[str, float, dict[str, str]]] = []
    monkeypatch.setattr(metrics, "milliseconds", lambda name, value, **dims: recorded.append((name, value, dims)))
    ticks = iter([10.0, 10.75])
    provider = Scripted([ProviderTimeout("slow")])
    runner = Resilient(
        [Target(provider, "m")], RetryPolicy(), sleep=lambda _: None, rng=lambda: 0.5, clock=lambda: next(ticks)
    )
    # When
    events, _ = runner.stream(REQUEST)
    # Then the first event is there already, and the time to it is recorded twice: for the alarm and by provider
    assert recorded == [
        ("TimeToFirstToken", 750.0, {}),
        ("TimeToFirstToken", 750.0, {"provider": "scripted"}),
    ]
    assert [type(e).__name__ for e in events] == ["TextDelta", "Finish"]
    assert len(recorded) == 2  # draining the rest records nothing more


def test_a_stream_that_never_starts_records_no_time_to_first_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from parley import metrics

    recorded: list[str] = []
    monkeypatch.setattr(metrics, "milliseconds", lambda name, value, **dims: recorded.append(name))
    runner, _ = resilient(Target(Scripted([ProviderRejected("no")]), "m"))
    with pytest.raises(ProviderRejected):
        runner.stream(REQUEST)
    assert recorded == []
