"""Context selection on crafted histories, with the boundary cases."""

from __future__ import annotations

import pytest

from parley.domain.context import MAX_WINDOW_MESSAGES, Summary, Turn, select
from parley.domain.errors import InvalidRequest


def history(n: int, tokens: int = 10) -> list[Turn]:
    """n turns of `tokens` each, newest first."""
    return [Turn(seq, "user" if seq % 2 else "assistant", f"m{seq}", tokens) for seq in range(n, 0, -1)]


def test_sliding_window_keeps_the_newest_that_fit() -> None:
    window = select(
        strategy="sliding_window",
        max_tokens=100,
        fixed_tokens=30,
        new_message_tokens=10,
        history=history(20),
        reached_start=True,
    )
    assert [t.seq for t in window.turns] == [14, 15, 16, 17, 18, 19, 20]
    assert window.tokens == 100
    assert window.dropped == (1, 13)
    assert not window.fell_back


def test_empty_history() -> None:
    for strategy in ("full", "sliding_window", "summarize"):
        window = select(
            strategy=strategy, max_tokens=100, fixed_tokens=20, new_message_tokens=10, history=[], reached_start=True
        )
        assert (window.turns, window.tokens, window.dropped, window.fell_back) == ((), 20, None, False)


def test_a_new_message_larger_than_the_budget_is_a_400() -> None:
    with pytest.raises(InvalidRequest) as refused:
        select(
            strategy="sliding_window",
            max_tokens=100,
            fixed_tokens=130,
            new_message_tokens=101,
            history=[],
            reached_start=True,
        )
    assert (refused.value.param, refused.value.code) == ("content", "message_too_large")


def test_hidden_context_larger_than_the_budget_is_a_400() -> None:
    with pytest.raises(InvalidRequest) as refused:
        select(
            strategy="summarize",
            max_tokens=100,
            fixed_tokens=101,
            new_message_tokens=5,
            history=history(3),
            reached_start=True,
        )
    assert refused.value.code == "context_too_large"


def test_full_takes_everything_that_fits_and_falls_back_otherwise() -> None:
    full = select(
        strategy="full",
        max_tokens=1000,
        fixed_tokens=50,
        new_message_tokens=10,
        history=history(20),
        reached_start=True,
    )
    assert ([t.seq for t in full.turns], full.applied, full.fell_back) == (list(range(1, 21)), "full", False)
    over = select(
        strategy="full", max_tokens=150, fixed_tokens=50, new_message_tokens=10, history=history(20), reached_start=True
    )
    assert (over.applied, over.fell_back, over.reason) == ("sliding_window", True, "over_budget")
    assert [t.seq for t in over.turns] == list(range(11, 21))
    unread = select(
        strategy="full",
        max_tokens=10_000,
        fixed_tokens=50,
        new_message_tokens=10,
        history=history(20),
        reached_start=False,
    )
    assert (unread.fell_back, unread.reason) == (True, "too_many_messages")


def test_windows_are_capped_in_messages() -> None:
    window = select(
        strategy="sliding_window",
        max_tokens=100_000,
        fixed_tokens=0,
        new_message_tokens=1,
        history=history(400, 1),
        reached_start=True,
    )
    assert len(window.turns) == MAX_WINDOW_MESSAGES
    assert window.turns[-1].seq == 400


def test_summarize_asks_for_a_summary_once_enough_messages_left_the_window() -> None:
    few = select(
        strategy="summarize",
        max_tokens=100,
        fixed_tokens=30,
        new_message_tokens=10,
        history=history(10),
        reached_start=True,
        summarize_after=5,
    )
    assert few.dropped == (1, 3)
    assert few.needs_summary is None
    many = select(
        strategy="summarize",
        max_tokens=100,
        fixed_tokens=30,
        new_message_tokens=10,
        history=history(20),
        reached_start=True,
        summarize_after=5,
    )
    assert many.needs_summary == (1, 13)


def test_summarize_uses_the_summary_and_the_newest_after_it() -> None:
    summary = Summary(version=2, covers_to=13, text="earlier: billing questions", tokens=20)
    window = select(
        strategy="summarize",
        max_tokens=100,
        fixed_tokens=30,
        new_message_tokens=10,
        history=history(20),
        reached_start=True,
        summary=summary,
        summarize_after=5,
    )
    assert [t.seq for t in window.turns] == [16, 17, 18, 19, 20]
    assert window.tokens == 30 + 20 + 50
    assert window.dropped == (14, 15)
    assert window.needs_summary is None
    assert window.summary == summary


def test_a_failed_summarization_falls_back_to_sliding_window() -> None:
    window = select(
        strategy="summarize",
        max_tokens=100,
        fixed_tokens=30,
        new_message_tokens=10,
        history=history(20),
        reached_start=True,
        summarize_after=5,
        summary_failed=True,
    )
    assert (window.applied, window.fell_back, window.reason) == ("sliding_window", True, "summarization_failed")
    assert window.tokens <= 100
