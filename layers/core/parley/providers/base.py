"""The model provider port. Services speak only this; adapters translate to each wire format."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from parley.domain.chat import ChatMessage, FinishReason, ResponseFormat, Tool, ToolCall, ToolChoiceFunction, Usage


@dataclass(frozen=True)
class ModelRequest:
    model: str
    messages: Sequence[ChatMessage]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: Sequence[str] = ()
    tools: Sequence[Tool] = ()
    tool_choice: str | ToolChoiceFunction | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    # OpenAI sampling extras: passed on by the openai adapter, ignored where a provider has none.
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    parallel_tool_calls: bool | None = None


@dataclass(frozen=True)
class ModelReply:
    content: str | None
    finish_reason: FinishReason
    usage: Usage
    tool_calls: Sequence[ToolCall] = field(default_factory=tuple)


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call. The first piece of call `index` carries its id and name; the
    arguments (a JSON text) arrive in fragments to be concatenated, as in OpenAI's stream."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class Finish:
    reason: FinishReason
    usage: Usage


StreamEvent = TextDelta | ToolCallDelta | Finish


class ModelProvider(Protocol):
    """Adapters raise only parley.domain.errors.ProviderError and its subclasses
    (ProviderTimeout, ProviderRateLimited, ProviderRejected), never a transport exception."""

    name: str

    def models(self) -> Sequence[str]:
        """The model names this provider serves; empty means any name (passed to the provider)."""
        ...

    def complete(self, request: ModelRequest) -> ModelReply: ...

    def stream(self, request: ModelRequest) -> Iterator[StreamEvent]:
        """Deltas as the model produces them, then exactly one Finish."""
        ...
