"""DynamoDB calls per conversation send: at most 5, at most 3 before the first token (the
conversation with its pinned items, the window, the reservation), the same at a short and a
long history, plain and streamed. Counted on the process's client (botocore's before-call hook,
as bench/send_message_calls.py does), so a read or write added to the send path fails here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from parley.aws import clients
from parley.domain.conversations import ContextSettings, ConversationCreate, MessageSend
from parley.domain.principal import Principal
from parley.domain.replies import TextDelta
from parley.services import conversations, messages
from parley.settings import get_settings
from parley.storage.items import to_item

CALLER = Principal("org_calls", "proj_calls", "key_calls", ("*",))


@contextmanager
def counted() -> Iterator[Counter[str]]:
    calls: Counter[str] = Counter()

    def hook(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    events = clients().dynamodb.meta.events
    events.register("before-call.dynamodb", hook)
    try:
        yield calls
    finally:
        events.unregister("before-call.dynamodb", hook)


def conversation_with(history: int, strategy: str) -> str:
    """A conversation with `history` completed messages, written directly, and one send already
    made (the first send of a warm environment reads the project's default provider)."""
    settings = ContextSettings(strategy=strategy)  # type: ignore[arg-type]
    conversation = conversations.create(CALLER, ConversationCreate(title="calls", context=settings))
    dynamodb, pk = clients().dynamodb, f"{CALLER.project_id}#{conversation.id}"
    table = get_settings().table("messages")
    items: list[Any] = [
        {
            "PutRequest": {
                "Item": to_item(
                    {
                        "pk": pk,
                        "sk": seq,
                        "id": f"msg_{seq:026d}",
                        "conversation_id": conversation.id,
                        "seq": seq,
                        "role": "user" if seq % 2 else "assistant",
                        "content": f"message {seq}",
                        "status": "completed",
                        "created_at": "2026-11-23T00:00:00Z",
                    }
                )
            }
        }
        for seq in range(1, history + 1)
    ]
    for start in range(0, len(items), 25):
        dynamodb.batch_write_item(RequestItems={table: items[start : start + 25]})
    dynamodb.update_item(
        TableName=get_settings().table("conversations"),
        Key={"pk": {"S": pk}, "sk": {"S": "conversation"}},
        UpdateExpression="SET next_seq = :n, message_count = :c",
        ExpressionAttributeValues={":n": {"N": str(history + 1)}, ":c": {"N": str(history)}},
    )
    messages.send(CALLER, conversation.id, MessageSend(content="warm-up"))  # at 400 under summarize: summarizes
    return conversation.id


def one_send(conversation_id: str, stream: bool) -> tuple[Counter[str], Counter[str]]:
    """The calls of one send, and those made before its first token."""
    before: Counter[str] = Counter()
    with counted() as calls:
        body = MessageSend(content="How much did I pay?", stream=stream)
        if stream:
            streamed = messages.send_stream(CALLER, conversation_id, body)
            assert isinstance(streamed, messages.Streamed)
            for event in streamed.events:
                if isinstance(event, TextDelta) and not before:
                    before = calls.copy()
        else:
            messages.send(CALLER, conversation_id, body)
    return calls, before


@pytest.mark.parametrize("strategy", ["sliding_window", "summarize"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_send_makes_at_most_five_calls_three_before_its_first_token_whatever_its_history(
    aws: None, strategy: str, stream: bool
) -> None:
    short, long = conversation_with(10, strategy), conversation_with(400, strategy)
    (short_calls, short_before), (long_calls, long_before) = one_send(short, stream), one_send(long, stream)
    assert short_calls == long_calls  # constant in history, operation by operation
    assert sum(short_calls.values()) <= 5
    if stream:
        assert short_before == long_before
        # the conversation with its summary, the window, the reservation
        assert short_before == Counter({"BatchGetItem": 1, "Query": 1, "TransactWriteItems": 1})


def test_a_summarized_conversation_still_reads_its_summary_with_the_conversation(aws: None) -> None:
    """The summary comes with the conversation's read (no pinned query), and it is used."""
    conversation_id = conversation_with(400, "summarize")
    _, summary = conversations.store().pinned(CALLER.project_id, conversation_id)
    assert summary is not None  # the warm-up send summarized
    calls, _ = one_send(conversation_id, stream=False)
    assert calls["Query"] == 1  # the window only


def test_hidden_context_is_still_read_for_a_send(aws: None, received: list[list[tuple[str, str]]]) -> None:
    """A conversation with hidden context: the pinned query is made (one more read), and the
    hidden item reaches the model."""
    from parley.services import context

    conversation_id = conversation_with(10, "sliding_window")
    context.inject(CALLER, conversation_id, "The user's name is Ada.", "echo")
    calls, _ = one_send(conversation_id, stream=False)
    assert calls["Query"] == 2
    assert any("The user's name is Ada." in text for _role, text in received[-1])
