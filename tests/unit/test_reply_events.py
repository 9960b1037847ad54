"""One recorded reply, every encoding: golden outputs of parley.api.replies; and the one stream
lifecycle (parley.services.replies.relay) under drain, early stop and mid-way failure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import TypeAdapter

from parley.api import replies
from parley.domain.chat import FunctionCall, ToolCall, Usage
from parley.domain.conversations import Cost
from parley.domain.errors import ParleyError, ProviderError
from parley.domain.replies import (
    Finished,
    ReplyDone,
    ReplyEvent,
    ReplyFailed,
    ReplyStarted,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
)
from parley.providers import base
from parley.services.replies import Ending, relay

USAGE = Usage(prompt_tokens=5, completion_tokens=3, total_tokens=8)
CALL = ToolCall(id="call_1", function=FunctionCall(name="lookup", arguments='{"q":"x"}'))
RECORDED: list[ReplyEvent] = [
    ReplyStarted(
        reply_id="msg_R", model="gpt-4o-mini", created=1700000000, conversation_id="conv_C", user_message_id="msg_U"
    ),
    TextDelta(text="Hel"),
    TextDelta(text="lo"),
    ToolCallDelta(index=0, id="call_1", name="lookup", arguments='{"q":'),
    ToolCallDelta(index=0, arguments='"x"}'),
    Finished(reason="tool_calls", usage=USAGE),
    ToolCallDone(call=CALL),
    ReplyDone(reply_id="msg_R", usage=USAGE, cost=Cost(amount_usd=0.25)),
]
FAILED: list[ReplyEvent] = [
    RECORDED[0],
    TextDelta(text="Hel"),
    ReplyFailed(status=502, error_type="provider_error", code="provider_error", message="upstream broke"),
]

CONVERSATION_GOLDEN = (
    'event: start\ndata: {"type":"start","conversation_id":"conv_C","message_id":"msg_R","user_message_id":"msg_U"}\n\n'
    'event: text\ndata: {"type":"text","text":"Hel"}\n\n'
    'event: text\ndata: {"type":"text","text":"lo"}\n\n'
    'event: tool_call\ndata: {"type":"tool_call","id":"call_1","name":"lookup","input":"{\\"q\\":\\"x\\"}"}\n\n'
    'event: done\ndata: {"type":"done","message_id":"msg_R","usage":{"prompt_tokens":5,"completion_tokens":3,'
    '"total_tokens":8,"prompt_tokens_details":null,"completion_tokens_details":null},'
    '"cost":{"amount_usd":0.25,"currency":"usd"},"token_count":8}\n\n'
)


def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
    body = {
        "id": "msg_R",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "system_fingerprint": None,
        "choices": choices,
        **extra,
    }
    return "data: " + json.dumps(body, separators=(",", ":")) + "\n\n"


def delta(value: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
    return [{"index": 0, "delta": value, "logprobs": None, "finish_reason": finish}]


def test_the_conversation_stream_of_the_recorded_reply() -> None:
    assert b"".join(replies.conversation_sse(RECORDED)).decode() == CONVERSATION_GOLDEN


def test_the_completion_chunks_of_the_recorded_reply() -> None:
    expected = (
        chunk(delta({"role": "assistant", "content": ""}))
        + chunk(delta({"content": "Hel"}))
        + chunk(delta({"content": "lo"}))
        + chunk(
            delta(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": '{"q":'},
                        }
                    ]
                }
            )
        )
        + chunk(delta({"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]}))
        + chunk(delta({}, "tool_calls"))
        + "data: [DONE]\n\n"
    )
    assert b"".join(replies.completion_chunks(RECORDED)).decode() == expected


DETAILED_USAGE = {
    "prompt_tokens": 5,
    "completion_tokens": 3,
    "total_tokens": 8,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def test_the_completion_chunks_with_usage() -> None:
    text = b"".join(replies.completion_chunks(RECORDED, include_usage=True)).decode()
    lines = [line for line in text.split("\n\n") if line]
    assert all('"usage":null' in line for line in lines[:-2])
    # OpenAI's shape: both detail objects, in the stream as in the buffered body
    assert json.loads(lines[-2][6:])["usage"] == DETAILED_USAGE
    assert lines[-1] == "data: [DONE]"


def test_the_buffered_completion_of_the_recorded_reply() -> None:
    body = replies.completion_body(RECORDED).model_dump(exclude_none=True)
    assert body == {
        "id": "msg_R",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello",
                    "tool_calls": [CALL.model_dump(exclude_none=True)],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": DETAILED_USAGE,
    }


def test_a_failed_reply_in_every_encoding() -> None:
    conversation = b"".join(replies.conversation_sse(FAILED, "req-1")).decode()
    assert conversation.endswith(
        'event: error\ndata: {"type":"error","error":{"type":"provider_error","code":"provider_error",'
        '"message":"upstream broke","param":null,"request_id":"req-1"}}\n\n'
    )
    chunks = b"".join(replies.completion_chunks(FAILED, "req-1")).decode()
    assert chunks.endswith(
        'data: {"error":{"type":"provider_error","code":"provider_error","message":"upstream broke",'
        '"param":null,"request_id":"req-1"}}\n\n'
    )
    with pytest.raises(ParleyError) as raised:
        replies.completion_body(FAILED)
    assert (raised.value.status, raised.value.code) == (502, "provider_error")


def test_the_events_round_trip_through_json() -> None:
    adapter = TypeAdapter(list[ReplyEvent])
    assert adapter.validate_json(adapter.dump_json(RECORDED)) == RECORDED


class Source:
    """A provider stream that counts how often it is closed."""

    def __init__(self, events: list[base.StreamEvent], fail_after: int | None = None) -> None:
        self.events, self.fail_after, self.closed = events, fail_after, 0

    def __iter__(self) -> Iterator[base.StreamEvent]:
        return self

    def __next__(self) -> base.StreamEvent:
        if self.fail_after is not None and self.fail_after == 0:
            raise ProviderError("upstream broke")
        if not self.events:
            raise StopIteration
        if self.fail_after is not None:
            self.fail_after -= 1
        return self.events.pop(0)

    def close(self) -> None:
        self.closed += 1


PROVIDER_EVENTS: list[base.StreamEvent] = [base.TextDelta("a"), base.TextDelta("b"), base.Finish("stop", USAGE)]
START = RECORDED[0]


def lifecycle(source: Source) -> tuple[Iterator[ReplyEvent], list[Ending]]:
    endings: list[Ending] = []

    def end(ending: Ending) -> list[ReplyEvent]:
        endings.append(ending)
        return [ReplyDone(reply_id="msg_R")] if ending.error is None else [ReplyFailed.of(ending.error)]

    return relay(source, end, first=START), endings


def test_a_drained_reply_ends_once_completed_and_closes_its_source() -> None:
    source = Source(list(PROVIDER_EVENTS))
    events, endings = lifecycle(source)
    got = list(events)
    assert [e.type for e in got] == ["start", "text", "text", "finish", "done"]
    assert [(e.status, e.text, e.usage) for e in endings] == [("completed", "ab", USAGE)]
    assert source.closed == 1


def test_a_consumer_that_stops_early_ends_the_reply_once_incomplete() -> None:
    source = Source(list(PROVIDER_EVENTS))
    events, endings = lifecycle(source)
    assert next(events).type == "start"
    assert next(events).type == "text"
    events.close()  # type: ignore[attr-defined]
    assert [(e.status, e.text, e.consumer_left) for e in endings] == [("incomplete", "a", True)]
    assert source.closed == 1


def test_a_consumer_that_stops_at_the_start_still_ends_the_reply() -> None:
    source = Source(list(PROVIDER_EVENTS))
    events, endings = lifecycle(source)
    assert next(events).type == "start"
    events.close()  # type: ignore[attr-defined]
    assert [e.status for e in endings] == ["incomplete"]
    assert source.closed == 1


def test_a_model_failing_mid_way_ends_the_reply_once_with_its_error() -> None:
    source = Source(list(PROVIDER_EVENTS), fail_after=1)
    events, endings = lifecycle(source)
    got = list(events)
    assert [e.type for e in got] == ["start", "text", "error"]
    assert [(e.status, e.text, e.error.code if e.error else None) for e in endings] == [
        ("incomplete", "a", "provider_error")
    ]
    assert source.closed == 1
