"""One lifecycle for every streamed reply: relay the model's events as reply events, then end the
reply exactly once, however the stream ends.

`relay` guarantees that `end` runs once and the provider stream is closed once, whether the
consumer drains the stream, stops early (the client went away: GeneratorExit), or the model
fails mid-way (a ParleyError), and that the consumer sees what `end` returns when it is still
there to see it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from parley.domain.chat import FinishReason, FunctionCall, ToolCall, Usage
from parley.domain.errors import ParleyError
from parley.domain.replies import Finished, ReplyEvent, TextDelta, ToolCallDelta
from parley.providers import base

Status = Literal["completed", "incomplete"]


@dataclass
class Ending:
    """How a streamed reply ended, and what it had produced by then."""

    status: Status
    text: str
    tool_calls: list[ToolCall]
    usage: Usage | None
    finish_reason: FinishReason | None
    error: ParleyError | None = None
    consumer_left: bool = False  # nobody will see what `end` returns


@dataclass
class _Collected:
    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    usage: Usage | None = None
    reason: FinishReason | None = None

    def take(self, event: base.StreamEvent) -> ReplyEvent:
        if isinstance(event, base.TextDelta):
            self.text.append(event.text)
            return TextDelta(text=event.text)
        if isinstance(event, base.ToolCallDelta):
            piece = self.calls.setdefault(event.index, {"id": "", "name": "", "arguments": ""})
            piece["id"] = event.id or piece["id"]
            piece["name"] = event.name or piece["name"]
            piece["arguments"] += event.arguments
            return ToolCallDelta(index=event.index, id=event.id, name=event.name, arguments=event.arguments)
        self.usage, self.reason = event.usage, event.reason
        return Finished(reason=event.reason, usage=event.usage, system_fingerprint=event.system_fingerprint)

    def ending(self, status: Status, error: ParleyError | None = None, *, consumer_left: bool = False) -> Ending:
        calls = [
            ToolCall(id=c["id"], function=FunctionCall(name=c["name"], arguments=c["arguments"]))
            for _, c in sorted(self.calls.items())
        ]
        return Ending(status, "".join(self.text), calls, self.usage, self.reason, error, consumer_left)


def relay(
    source: Iterator[base.StreamEvent], end: Callable[[Ending], list[ReplyEvent]], *, first: ReplyEvent
) -> Iterator[ReplyEvent]:
    """`first` (the reply's start), the model's events as reply events, then the events `end`
    returns for the ending (`end` finishes the reply: stores it, meters it; it runs before any
    of its events is yielded)."""
    collected = _Collected()
    ended = False
    try:
        try:
            yield first
            for event in source:
                yield collected.take(event)
        except ParleyError as error:
            ended = True
            yield from end(collected.ending("incomplete", error))
            return
        ended = True
        yield from end(collected.ending("completed"))
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
        if not ended:  # the consumer went away, or something unexpected broke: keep what was produced
            end(collected.ending("incomplete", consumer_left=True))
