"""The context window of a conversation: built before each model call, and shown on request.

Reads are bounded and do not grow with the history: one query for the pinned items (hidden
context, summary), one for the newest messages (READ_LIMIT). Token counts are stored with each
message when it is written (parley.providers.tokenizer), so nothing old is tokenized again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from parley.domain.chat import ChatMessage, ToolCall
from parley.domain.context import (
    MAX_WINDOW_MESSAGES,
    ContextState,
    ContextSummary,
    HiddenCount,
    LastCall,
    SeqRange,
    Strategy,
    Summary,
    Turn,
    Window,
    coherent,
    select,
)
from parley.domain.conversations import (
    ConversationRecord,
    HiddenContextItem,
    HiddenRecord,
    SummaryRecord,
    WindowLine,
)
from parley.domain.errors import InvalidRequest, ParleyError
from parley.domain.ids import new_id
from parley.domain.principal import Principal
from parley.domain.tokens import REPLY_PRIMING
from parley.providers.base import ModelRequest
from parley.providers.resilient import Resilient
from parley.providers.tokenizer import count_message, default_max_tokens, is_exact
from parley.services import conversations as lifecycle
from parley.services import threads
from parley.services.metering import CallRecord, record_call
from parley.storage.conversations import MAX_HIDDEN, ConversationStore, retry_stale

log = logging.getLogger(__name__)
SUMMARY_PROMPT = (
    "Summarize the conversation below for an assistant that will continue it. Keep facts, decisions, names, "
    "numbers and open questions; drop pleasantries. Write plain prose."
)
SUMMARY_PREFIX = "Summary of the earlier conversation: "


@dataclass(frozen=True)
class Settings:
    strategy: Strategy
    max_tokens: int
    summarize_after: int
    max_messages: int

    @property
    def read_limit(self) -> int:
        """Newest messages read per call: the largest window, plus (to summarize) what just left it."""
        return self.max_messages + (self.summarize_after + 1 if self.strategy == "summarize" else 0)


def settings_for(record: ConversationRecord, model: str) -> Settings:
    context = record.context or {}
    return Settings(
        strategy=context.get("strategy", "sliding_window"),
        max_tokens=int(context.get("max_tokens") or default_max_tokens(model)),
        summarize_after=int(context.get("summarize_after") or 20),
        max_messages=int(context.get("max_messages") or MAX_WINDOW_MESSAGES),
    )


@dataclass(frozen=True)
class Built:
    window: Window
    messages: list[ChatMessage]  # what the model receives
    new_tokens: int
    hidden: int  # how many hidden context items
    hidden_tokens: int
    stored_summary: Summary | None  # the conversation's summary, whether or not this window uses it
    # the conversation's version when the window was built: a summary stored on the way moves it
    version: int
    thread: threads.Prefix | None = None  # a thread's: its anchor and the parent's messages before it

    def record(self) -> dict[str, Any]:
        """What the reply stores about its context (shown by GET .../context as last_call)."""
        window = self.window
        return {
            "strategy": window.strategy,
            "applied": window.applied,
            "fell_back": window.fell_back,
            "reason": window.reason,
            "tokens": window.tokens,
            "max_tokens": window.max_tokens,
            "messages": len(window.turns),
            "from_seq": window.seq_range[0] if window.seq_range else None,
            "to_seq": window.seq_range[1] if window.seq_range else None,
            "summary_version": window.summary.version if window.summary else None,
            "hidden": self.hidden,
            **(self.thread.record() if self.thread else {}),
        }


def _turn(item: WindowLine, model: str) -> Turn | None:
    calls = tuple(ToolCall(**c) for c in item.tool_calls or ()) if item.role == "assistant" else ()
    if item.status != "completed" or item.role not in ("user", "assistant", "tool"):
        return None
    if not item.content and not calls and item.role != "tool":
        return None
    if item.role == "tool" and not item.tool_call_id:
        return None
    tokens = item.tokens
    if tokens is None:
        tokens = count_message(model, item.content + "".join(c.function.arguments for c in calls))
    return Turn(item.seq, item.role, item.content, tokens, calls, item.tool_call_id)


def _line(turn: Turn) -> str:
    """A turn in a summary's transcript."""
    calls = "".join(f" [called {c.function.name}({c.function.arguments})]" for c in turn.tool_calls)
    return f"{turn.role}: {turn.content}{calls}"


def chat_message(turn: Turn) -> ChatMessage:
    """A window's turn as the model receives it."""
    if turn.role == "tool":
        return ChatMessage(role="tool", content=turn.content, tool_call_id=turn.tool_call_id)
    if turn.tool_calls:
        return ChatMessage(role="assistant", content=turn.content or None, tool_calls=list(turn.tool_calls))
    return ChatMessage(role=turn.role, content=turn.content)  # type: ignore[arg-type]


def _summary(item: SummaryRecord | None) -> Summary | None:
    if item is None:
        return None
    return Summary(item.version, item.covers_to, item.text, item.tokens)


def build(
    principal: Principal,
    record: ConversationRecord,
    model: str,
    runner: Resilient,
    new_content: str | None,
    *,
    request_id: str = "",
    summarize: bool = True,
    store: ConversationStore | None = None,
    new_turns: Sequence[tuple[Turn, ChatMessage]] | None = None,
) -> Built:
    """The window for a call with `new_content` as the new user message (None: a preview).

    `new_turns` (a Responses call's input items, not stored yet, at seqs from next_seq on): they
    follow the window instead of one user message, and `new_content` only counts their tokens;
    the window's tool calls and the new turns' results are paired up together (`coherent`), each
    new user turn sent as its own message (with its image parts)."""
    store = store or lifecycle.store()
    settings = settings_for(record, model)
    project, conversation_id = principal.project_id, record.id
    hidden, summary_item = store.pinned(project, conversation_id, record)  # none when the record brought them
    hidden_tokens = sum(h.tokens for h in hidden)
    thread = threads.prefix(principal, record, store, settings.read_limit, lambda item: _turn(item, model))
    items, reached_start = store.newest(project, conversation_id, record.next_seq, settings.read_limit)
    history = [t for t in (_turn(i, model) for i in items) if t is not None]
    system = record.system_prompt
    new_tokens = count_message(model, new_content) if new_content is not None else 0
    fixed = REPLY_PRIMING + (count_message(model, system) if system else 0) + hidden_tokens + new_tokens
    fixed += thread.anchor_tokens if thread else 0  # a thread's anchor is always in
    summary = _summary(summary_item)

    def choose(current: Summary | None, failed: bool = False) -> Window:
        return select(
            strategy=settings.strategy,
            max_tokens=settings.max_tokens,
            fixed_tokens=fixed,
            new_message_tokens=new_tokens,
            history=history,
            reached_start=reached_start,
            summary=current,
            summarize_after=settings.summarize_after,
            summary_failed=failed,
            max_messages=settings.max_messages,
        )

    window = choose(summary)
    version = record.version
    if window.needs_summary is not None and summarize:
        try:
            summary, moved = _summarize(principal, record, model, runner, summary, window, history, store, request_id)
            version = moved or version
            window = choose(summary)
        except ParleyError as error:
            log.warning(
                "summarization failed; this call falls back to sliding_window",
                extra={"conversation_id": conversation_id, "code": error.code},
            )
            window = choose(summary, failed=True)
    if window.fell_back:
        log.warning(
            "context strategy fell back",
            extra={"conversation_id": conversation_id, "strategy": window.strategy, "reason": window.reason},
        )
    messages: list[ChatMessage] = []
    if system:
        messages.append(ChatMessage(role="system", content=system))
    messages += [ChatMessage(role="system", content=h.content) for h in hidden]
    if thread is not None:  # the parent's messages before the anchor, as many as fit, then the anchor
        thread, window = thread.fill(window, settings.max_messages)
        messages += [ChatMessage(role=t.role, content=t.content) for t in thread.turns]  # type: ignore[arg-type]
    if window.summary is not None:
        messages.append(ChatMessage(role="system", content=SUMMARY_PREFIX + window.summary.text))
    if new_turns is not None:
        sent = {turn.seq: message for turn, message in new_turns}
        kept = coherent([*window.turns, *(turn for turn, _ in new_turns)])
        messages += [sent[t.seq] if t.role == "user" and t.seq in sent else chat_message(t) for t in kept]
        return Built(window, messages, new_tokens, len(hidden), hidden_tokens, summary, version, thread)
    messages += [chat_message(t) for t in coherent(window.turns)]
    if new_content is not None:
        messages.append(ChatMessage(role="user", content=new_content))
    return Built(window, messages, new_tokens, len(hidden), hidden_tokens, summary, version, thread)


def _summarize(
    principal: Principal,
    record: ConversationRecord,
    model: str,
    runner: Resilient,
    previous: Summary | None,
    window: Window,
    history: list[Turn],
    store: ConversationStore,
    request_id: str,
) -> tuple[Summary, int | None]:
    """Summarize the previous summary and the messages that left the window; store it as a new
    version. With it, the conversation's version after the write (None when another send's
    summary was stored first and is used instead)."""
    assert window.needs_summary is not None
    first, last = window.needs_summary
    leaving = [t for t in reversed(history) if first <= t.seq <= last]
    transcript = "\n".join(_line(t) for t in leaving)
    prompt = (f"Summary so far: {previous.text}\n\n" if previous else "") + f"Conversation:\n{transcript}"
    limit = max(64, min(1024, window.max_tokens // 4))
    request = ModelRequest(
        model=model,
        messages=[ChatMessage(role="system", content=SUMMARY_PROMPT), ChatMessage(role="user", content=prompt)],
        max_tokens=limit,
    )
    started = time.monotonic()
    reply, outcome = runner.complete(request)
    record_call(
        principal,
        CallRecord(
            route="summarize conversation",
            request_id=request_id,
            model=outcome.target.model,
            status=200,
            outcome="succeeded",
            latency_ms=int((time.monotonic() - started) * 1000),
            usage=reply.usage,
            provider_id=outcome.target.provider_id,
            resource_ids=[record.id],
            tries=outcome.tries,
            provider=outcome.target.provider.name,
        ),
    )
    text = (reply.content or "").strip()
    if not text:
        raise ParleyError("The model returned an empty summary.", code="empty_summary")
    summary = Summary(
        version=(previous.version + 1) if previous else 1,
        covers_to=last,
        text=text,
        tokens=count_message(model, SUMMARY_PREFIX + text),
    )
    stored = store.put_summary(
        principal.project_id,
        record.id,
        SummaryRecord(
            id=new_id("msg"),
            version=summary.version,
            covers_to=summary.covers_to,
            text=summary.text,
            tokens=summary.tokens,
            model=outcome.target.model,
            created_at=lifecycle.now(),
            org_id=principal.org_id,
        ),
        previous.version if previous else None,
        record.version,
    )
    if stored is None:  # another send summarized first: use theirs
        _, current = store.pinned(principal.project_id, record.id)
        other = _summary(current)
        if other is None:
            raise ParleyError("The summary could not be stored.", code="summary_conflict")
        return other, None
    return summary, stored


def state(principal: Principal, conversation_id: str, model: str, runner: Resilient) -> ContextState:
    """GET .../context: the window the next call would use, the summary, and what the last call had."""
    store = lifecycle.store()
    record = lifecycle.load_for_call(principal, conversation_id, store)
    built = build(principal, record, model, runner, None, summarize=False, store=store)
    window = built.window
    last_call = None
    last_seq = record.next_seq - 1
    for item in store.message_range(principal.project_id, conversation_id, max(1, last_seq - 9), last_seq, True):
        if item.role == "assistant" and item.context:
            # stored items drop null fields: the model's defaults put them back, so the shape is stable
            last_call = LastCall.model_validate(
                {
                    **item.context,
                    "message_id": item.id,
                    "status": item.status,
                    "provider_prompt_tokens": (item.usage or {}).get("prompt_tokens"),
                }
            )
            break
    summary = built.stored_summary
    seqs = window.seq_range
    return ContextState(
        conversation_id=conversation_id,
        model=model,
        strategy=window.strategy,
        applied_strategy=window.applied,
        fell_back=window.fell_back,
        fallback_reason=window.reason,
        max_tokens=window.max_tokens,
        summarize_after=settings_for(record, model).summarize_after,
        total_messages=record.message_count,
        context_messages=len(window.turns),
        context_tokens=window.tokens,
        window=SeqRange(from_seq=seqs[0] if seqs else None, to_seq=seqs[1] if seqs else None),
        dropped=SeqRange(from_seq=window.dropped[0], to_seq=window.dropped[1]) if window.dropped else None,
        summary=ContextSummary(
            version=summary.version,
            covers=SeqRange(from_seq=1, to_seq=summary.covers_to),
            text=summary.text,
            tokens=summary.tokens,
        )
        if summary
        else None,
        hidden=HiddenCount(count=built.hidden, tokens=built.hidden_tokens),
        token_counting="exact" if is_exact(model) else "estimate",
        last_call=last_call,
        thread=built.thread.view() if built.thread else None,
    )


def inject(principal: Principal, conversation_id: str, content: str, model: str) -> HiddenContextItem:
    """Store hidden context: the model sees it in every call, the default history never shows it."""
    store = lifecycle.store()
    tokens = count_message(model, content)

    def attempt() -> HiddenContextItem:
        record = lifecycle.load_for_call(principal, conversation_id, store)
        hidden, _ = store.pinned(principal.project_id, conversation_id)
        if len(hidden) >= MAX_HIDDEN:
            raise InvalidRequest(
                f"A conversation holds at most {MAX_HIDDEN} hidden context items.",
                code="too_much_hidden_context",
                param="content",
            )
        budget = settings_for(record, model).max_tokens
        total = tokens + sum(h.tokens for h in hidden)
        if total > budget // 2:
            raise InvalidRequest(
                f"Hidden context would take {total} tokens, more than half the context budget ({budget}).",
                code="context_too_large",
                param="content",
            )
        item = HiddenRecord(
            id=new_id("msg"),
            conversation_id=conversation_id,
            content=content,
            tokens=tokens,
            created_at=lifecycle.now(),
        )
        store.add_hidden(record, item)
        return HiddenContextItem.of(item)

    result: HiddenContextItem = retry_stale(attempt)
    return result
