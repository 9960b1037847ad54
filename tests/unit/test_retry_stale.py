"""retry_stale: a lost race is tried again for at least N tries and as long as its time allows."""

from __future__ import annotations

import pytest

from parley.domain.errors import Conflict
from parley.storage.conversations import StaleConversation, retry_stale


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def losing(times: int) -> tuple[list[int], object]:
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise StaleConversation
        return "won"

    return calls, attempt


def test_a_sender_that_keeps_losing_still_wins_within_the_time_allowed() -> None:
    clock = Clock()
    calls, attempt = losing(60)  # more losses than the minimum number of tries
    assert retry_stale(attempt, tries=30, within=60.0, sleep=clock.sleep, clock=clock) == "won"  # type: ignore[arg-type]
    assert len(calls) == 61


def test_past_both_bounds_the_sender_gets_409_conversation_busy() -> None:
    clock = Clock()
    calls, attempt = losing(10**6)
    with pytest.raises(Conflict) as raised:
        retry_stale(attempt, tries=30, within=2.0, sleep=clock.sleep, clock=clock)  # type: ignore[arg-type]
    assert raised.value.code == "conversation_busy"
    assert len(calls) >= 30
    assert clock.now >= 2.0
