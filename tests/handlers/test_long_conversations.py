"""500 turns with the echo model under each strategy (service level, on moto)."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest

from parley.domain.conversations import ContextSettings, ConversationCreate, MessageSend
from parley.domain.principal import Principal
from parley.services import conversations, messages, registry
from parley.storage.conversations import ConversationStore

CALLER = Principal("org_a", "proj_a", "key_a", ("*",))
TURNS = int(__import__("os").environ.get("PARLEY_LONG_TURNS", "500"))
MAX_TOKENS = 600
SUMMARIZE_AFTER = 6
MAX_MESSAGES = 30  # keeps each send's read (and moto's work) small; the token budget still binds


@pytest.fixture
def cheap_moto_transactions(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto deep-copies every table a TransactWriteItems touches (to roll back on a failed
    condition), so 1,500 transactions over growing tables turn quadratic. This test has one
    writer and no failing condition, so no rollback ever happens: a shallow snapshot does."""
    monkeypatch.setattr("moto.dynamodb.models.copy", SimpleNamespace(deepcopy=copy.copy, copy=copy.copy))


@pytest.mark.usefixtures("cheap_moto_transactions")
@pytest.mark.parametrize("strategy", ["full", "sliding_window", "summarize"])
def test_five_hundred_turns(aws: None, monkeypatch: pytest.MonkeyPatch, strategy: str) -> None:
    prompts: list[list[tuple[str, str]]] = []
    original = registry.EchoProvider.complete

    def spy(self: Any, request: Any) -> Any:
        prompts.append([(m.role, m.text()) for m in request.messages])
        return original(self, request)

    monkeypatch.setattr(registry.EchoProvider, "complete", spy)
    context = ContextSettings(  # type: ignore[arg-type]
        strategy=strategy, max_tokens=MAX_TOKENS, summarize_after=SUMMARIZE_AFTER, max_messages=MAX_MESSAGES
    )
    conversation = conversations.create(CALLER, ConversationCreate(system_prompt="Be brief.", context=context))
    store = ConversationStore()
    summaries_seen = 0
    previous = ""
    for turn in range(TURNS):
        text = f"turn {turn}: " + " ".join(["word"] * (turn % 17 + 3))
        reply = messages.send(CALLER, conversation.id, MessageSend(content=text)).message
        prompt = prompts[-1]
        assert reply.usage is not None
        assert reply.usage.prompt_tokens <= MAX_TOKENS, f"turn {turn}: {reply.usage.prompt_tokens}"
        assert prompt[-1] == ("user", text)
        if turn > 0:  # the newest earlier exchange is always there
            assert prompt[-3:-1] == [("user", previous), ("assistant", previous)]
        previous = text
        (item,) = store.message_range(CALLER.project_id, conversation.id, reply.seq, reply.seq, False)
        record = item.context
        assert record is not None
        assert record["tokens"] == reply.usage.prompt_tokens  # what Parley counted is what the model got
        if strategy == "summarize" and turn > 0:
            _, summary = store.pinned(CALLER.project_id, conversation.id)
            window_start = int(record["from_seq"])
            covered = summary.covers_to if summary else 0
            # the summary covers 1..covered, the window starts right after at most summarize_after unsummarized
            assert covered < window_start
            assert window_start - 1 - covered <= SUMMARIZE_AFTER
            if summary is not None:
                summaries_seen = max(summaries_seen, summary.version)
                assert record.get("summary_version") == summary.version
        assert record["messages"] <= MAX_MESSAGES
        if strategy == "full" and turn > 40:
            assert record["fell_back"] is True
            assert record["reason"] in ("over_budget", "too_many_messages")
    if strategy == "summarize":
        assert summaries_seen >= 10  # summaries were renewed again and again
