"""Which messages go into the context window: deterministic and pure, so it can be inspected.

Every strategy works within one budget, `max_tokens`, that always holds the fixed part (reply
priming, system prompt, injected hidden context, the new message) and then:

- full: every visible message, if they all fit; otherwise that call falls back to
  sliding_window (fell_back, reason "over_budget" or "history_too_long").
- sliding_window: the newest messages that fit, no extra model call.
- summarize: the summary (covering seqs 1..covers_to) plus the newest messages after it that
  fit. When more than `summarize_after` messages have left the window without being summarized,
  `needs_summary` names that seq range; the caller summarizes it and selects again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from parley.domain.chat import ToolCall
from parley.domain.errors import InvalidRequest
from parley.domain.indexes import Citation
from parley.domain.threads import ThreadContext

Strategy = Literal["full", "sliding_window", "summarize"]
MAX_WINDOW_MESSAGES = 150  # a window holds at most this many messages, whatever their size (the default cap)


@dataclass(frozen=True)
class Turn:
    seq: int
    role: str
    content: str
    tokens: int  # framing included
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant's calls
    tool_call_id: str | None = None  # a tool result's call


def coherent(turns: Sequence[Turn]) -> tuple[Turn, ...]:
    """The window's turns as a model accepts them: each tool result right after the assistant
    turn that called it (a send may land between a call and its result), calls without a result
    in the window left out (the window cut them off, or a turn ended before running them), and
    results whose call the window cut off left out."""
    results = {t.tool_call_id: t for t in turns if t.role == "tool" and t.tool_call_id}
    kept: list[Turn] = []
    for turn in turns:
        if turn.role == "tool":
            continue  # placed after its call below
        if not turn.tool_calls:
            kept.append(turn)
            continue
        answered = tuple(c for c in turn.tool_calls if c.id in results)
        if answered or turn.content:
            kept.append(replace(turn, tool_calls=answered))
        kept += [results[c.id] for c in answered]
    return tuple(kept)


@dataclass(frozen=True)
class Summary:
    version: int
    covers_to: int  # the summary stands for seqs 1..covers_to
    text: str
    tokens: int  # framing included


@dataclass(frozen=True)
class Window:
    strategy: Strategy  # configured
    applied: Strategy  # used for this call
    max_tokens: int
    turns: tuple[Turn, ...]  # oldest first
    tokens: int  # everything the model receives
    summary: Summary | None = None
    fell_back: bool = False
    reason: str | None = None
    needs_summary: tuple[int, int] | None = None
    dropped: tuple[int, int] | None = None  # seqs left out and not covered by the summary
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def seq_range(self) -> tuple[int, int] | None:
        return (self.turns[0].seq, self.turns[-1].seq) if self.turns else None


def _newest_fitting(history: Sequence[Turn], budget: int, cap: int, after_seq: int = 0) -> list[Turn]:
    """Newest-first history -> the newest turns (after `after_seq`, at most `cap`) whose tokens fit `budget`."""
    kept: list[Turn] = []
    used = 0
    for turn in history:
        if turn.seq <= after_seq or len(kept) == cap or used + turn.tokens > budget:
            break
        kept.append(turn)
        used += turn.tokens
    kept.reverse()
    return kept


def select(
    *,
    strategy: Strategy,
    max_tokens: int,
    fixed_tokens: int,
    new_message_tokens: int,
    history: Sequence[Turn],
    reached_start: bool,
    summary: Summary | None = None,
    summarize_after: int = 20,
    summary_failed: bool = False,
    max_messages: int = MAX_WINDOW_MESSAGES,
) -> Window:
    """`history` is newest first; `reached_start` says it goes back to the first message."""
    if new_message_tokens > max_tokens:
        raise InvalidRequest(
            f"The message has {new_message_tokens} tokens; the conversation's context budget is {max_tokens}.",
            code="message_too_large",
            param="content",
        )
    if fixed_tokens > max_tokens:
        raise InvalidRequest(
            f"The system prompt, injected context and message need {fixed_tokens} tokens; the context budget is "
            f"{max_tokens}. Raise context.max_tokens or shorten them.",
            code="context_too_large",
            param="context.max_tokens",
        )
    budget = max_tokens - fixed_tokens
    oldest_read = history[-1].seq if history else 1

    if strategy == "full":
        total = sum(t.tokens for t in history)
        if reached_start and total <= budget and len(history) <= max_messages:
            turns = tuple(reversed(history))
            return Window(strategy, "full", max_tokens, turns, fixed_tokens + total)
        reason = "over_budget" if reached_start else "too_many_messages"
        return _sliding(
            strategy, max_tokens, fixed_tokens, history, budget, fell_back=True, reason=reason, cap=max_messages
        )

    if strategy == "summarize" and not summary_failed:
        covered = summary.covers_to if summary else 0
        summary_tokens = summary.tokens if summary else 0
        if summary_tokens > budget:
            return _sliding(
                strategy,
                max_tokens,
                fixed_tokens,
                history,
                budget,
                fell_back=True,
                reason="summary_too_large",
                cap=max_messages,
            )
        recent = _newest_fitting(history, budget - summary_tokens, max_messages, after_seq=covered)
        start = recent[0].seq if recent else (history[0].seq + 1 if history else covered + 1)
        dropped = (covered + 1, start - 1) if start - 1 > covered else None
        needs = None
        if dropped is not None and dropped[1] - dropped[0] + 1 > summarize_after:
            needs = (max(dropped[0], oldest_read), dropped[1])
        tokens = fixed_tokens + summary_tokens + sum(t.tokens for t in recent)
        return Window(
            strategy,
            "summarize",
            max_tokens,
            tuple(recent),
            tokens,
            summary=summary,
            dropped=dropped,
            needs_summary=needs,
        )

    return _sliding(
        strategy,
        max_tokens,
        fixed_tokens,
        history,
        budget,
        fell_back=strategy != "sliding_window",
        reason="summarization_failed" if strategy == "summarize" else None,
        cap=max_messages,
    )


def _sliding(
    strategy: Strategy,
    max_tokens: int,
    fixed_tokens: int,
    history: Sequence[Turn],
    budget: int,
    *,
    fell_back: bool,
    reason: str | None,
    cap: int,
) -> Window:
    turns = _newest_fitting(history, budget, cap)
    start = turns[0].seq if turns else (history[0].seq + 1 if history else 1)
    dropped = (1, start - 1) if start > 1 else None
    return Window(
        strategy,
        "sliding_window",
        max_tokens,
        tuple(turns),
        fixed_tokens + sum(t.tokens for t in turns),
        fell_back=fell_back,
        reason=reason,
        dropped=dropped,
    )


# ---------------------------------------------------------------- GET .../context


class SeqRange(BaseModel):
    from_seq: int | None
    to_seq: int | None


class ContextSummary(BaseModel):
    version: int
    covers: SeqRange
    text: str
    tokens: int


class HiddenCount(BaseModel):
    count: int
    tokens: int


class Retrieval(BaseModel):
    index_id: str | None = None
    citations: list[Citation]


class LastCall(BaseModel):
    """What the last reply's model call received (stored with the reply)."""

    model_config = ConfigDict(extra="allow")  # what older replies stored, as they stored it

    message_id: str
    status: str
    strategy: Strategy | None = None
    applied: Strategy | None = None
    fell_back: bool = False
    reason: str | None = None
    tokens: int | None = None
    max_tokens: int | None = None
    messages: int | None = None
    from_seq: int | None = None
    to_seq: int | None = None
    summary_version: int | None = None
    hidden: int | None = None
    provider_prompt_tokens: int | None = None
    retrieval: Retrieval | None = Field(default=None, description="what retrieval (RAG) gave the call, when it ran")


class ContextState(BaseModel):
    """The window the next call would use, the summary, and what the last call had."""

    object: Literal["conversation_context"] = "conversation_context"
    conversation_id: str
    model: str
    strategy: Strategy
    applied_strategy: Strategy
    fell_back: bool
    fallback_reason: str | None
    max_tokens: int
    summarize_after: int
    total_messages: int
    context_messages: int
    context_tokens: int
    window: SeqRange
    dropped: SeqRange | None
    summary: ContextSummary | None
    hidden: HiddenCount
    token_counting: Literal["exact", "estimate"]
    last_call: LastCall | None
    thread: ThreadContext | None = Field(
        default=None, exclude_if=lambda v: v is None, description="a thread's: what comes from its parent"
    )
