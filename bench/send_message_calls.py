"""DynamoDB calls per send-message, at a short and a long history: they must be equal, at most
5, and at most 3 before the first token of a streamed send (the conversation with its summary in
one BatchGetItem, the window, the reservation); tests/handlers/test_calls_per_send.py holds them.

Counts every DynamoDB API call a send makes (botocore `before-call` hooks on the shared client),
by operation, for a conversation with 10 and with 5,000 messages of history, non-streamed and
streamed, under sliding_window and summarize. The send measured follows a warm-up send (at 5,000
messages under summarize, the warm-up is the one that summarizes: a summary is written about
once per `summarize_after` messages, and costs one model call and two writes, never extra reads).
Runs on moto; the count, not the time, is the measure.

    .venv/bin/python bench/send_message_calls.py
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from moto import mock_aws

from parley.aws import clients
from parley.domain.conversations import ContextSettings, ConversationCreate, MessageSend
from parley.domain.principal import Principal
from parley.domain.replies import TextDelta
from parley.runtime.local import LOCAL_ENV
from parley.services import conversations, messages
from parley.storage.items import to_item
from parley.storage.schema import create_tables

CALLER = Principal("org_bench", "proj_bench", "key_bench", ("*",))
READS = frozenset({"GetItem", "Query", "BatchGetItem", "TransactGetItems"})


def seed_history(conversation_id: str, count: int) -> None:
    """Write `count` completed messages directly, then move the conversation's counters."""
    dynamodb = clients().dynamodb
    pk = f"{CALLER.project_id}#{conversation_id}"
    items = []
    for seq in range(1, count + 1):
        role = "user" if seq % 2 else "assistant"
        items.append(
            {
                "PutRequest": {
                    "Item": to_item(
                        {
                            "pk": pk,
                            "sk": seq,
                            "id": f"msg_{seq:026d}",
                            "conversation_id": conversation_id,
                            "seq": seq,
                            "role": role,
                            "content": f"message {seq}",
                            "status": "completed",
                            "created_at": "2026-11-23T00:00:00Z",
                        }
                    )
                }
            }
        )
    for start in range(0, len(items), 25):
        dynamodb.batch_write_item(RequestItems={"parley-messages": items[start : start + 25]})
    dynamodb.update_item(
        TableName="parley-conversations",
        Key={"pk": {"S": pk}, "sk": {"S": "conversation"}},
        UpdateExpression="SET next_seq = :n, message_count = :c",
        ExpressionAttributeValues={":n": {"N": str(count + 1)}, ":c": {"N": str(count)}},
    )


def count_calls(history: int, stream: bool, strategy: str) -> tuple[Counter[str], int | None]:
    settings = ContextSettings(strategy=strategy)  # type: ignore[arg-type]
    conversation = conversations.create(CALLER, ConversationCreate(title=f"bench {history}", context=settings))
    seed_history(conversation.id, history)
    # one send first (not counted): at 5,000 messages it is the one that writes the first summary
    messages.send(CALLER, conversation.id, MessageSend(content="warm-up"))
    calls: Counter[str] = Counter()
    first_token: int | None = None

    def hook(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    events = clients().dynamodb.meta.events
    events.register("before-call.dynamodb", hook)
    try:
        body = MessageSend(content="How much did I pay?", stream=stream)
        if stream:
            streamed = messages.send_stream(CALLER, conversation.id, body)
            assert isinstance(streamed, messages.Streamed)
            for event in streamed.events:
                if isinstance(event, TextDelta) and first_token is None:
                    first_token = sum(calls.values())
        else:
            messages.send(CALLER, conversation.id, body)
    finally:
        events.unregister("before-call.dynamodb", hook)
    return calls, first_token


def main() -> None:
    for name, value in LOCAL_ENV.items():
        os.environ.setdefault(name, value)
    with mock_aws():
        create_tables(clients().dynamodb)
        rows = [
            (strategy, history, stream, *count_calls(history, stream, strategy))
            for strategy in ("sliding_window", "summarize")
            for stream in (False, True)
            for history in (10, 5000)
        ]
    operations = sorted({op for *_, calls, _first in rows for op in calls})
    print("DynamoDB calls per send-message (moto; counted with botocore before-call hooks)")
    header = f"{'strategy':>15} {'history':>8} {'stream':>7} " + " ".join(f"{op:>18}" for op in operations)
    print(header + f" {'reads':>6} {'writes':>6} {'total':>6} {'before 1st token':>17}")
    for strategy, history, stream, calls, first in rows:
        cells = " ".join(f"{calls.get(op, 0):>18}" for op in operations)
        reads = sum(n for op, n in calls.items() if op in READS)
        print(
            f"{strategy:>15} {history:>8} {'yes' if stream else 'no':>7} {cells} {reads:>6} "
            f"{sum(calls.values()) - reads:>6} {sum(calls.values()):>6} {first if first is not None else '-':>17}"
        )
    for strategy in ("sliding_window", "summarize"):
        for stream in (False, True):
            short, long = (sum(c.values()) for st, h, s, c, _f in rows if st == strategy and s == stream)
            verdict = "EQUAL" if short == long else "DIFFERENT"
            print(f"{strategy}, {'streamed' if stream else 'plain'}: {verdict} ({short} vs {long})")


if __name__ == "__main__":
    main()
