"""The model provider port. Services speak only this; adapters translate to each wire format."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    # The other OpenAI request fields the client set (parley.domain.chat.PASSTHROUGH_FIELDS), as JSON:
    # an OpenAI-compatible server gets them as sent, other adapters map what they can.
    options: Mapping[str, Any] = field(default_factory=dict)

    def fields_set(self) -> list[str]:
        """The OpenAI request fields this request sets beyond model and messages, by their OpenAI
        names, leaving out values that ask for nothing (n=1, logprobs false, modalities ["text"])."""
        typed = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop) or None,
            "tools": list(self.tools) or None,
            "tool_choice": self.tool_choice,
            "response_format": self.response_format,
            "user": self.user,
            "seed": self.seed,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "parallel_tool_calls": self.parallel_tool_calls,
        }
        names = [name for name, value in typed.items() if value is not None]
        return names + [name for name, value in self.options.items() if not _asks_nothing(name, value)]


# Fields whose honouring changes the shape of the result (several choices, token log probabilities,
# audio output): the port carries one text-and-tools choice, so these are refused (400), never dropped.
SHAPE_FIELDS = ("n", "logprobs", "top_logprobs", "modalities", "audio")


def _asks_nothing(name: str, value: Any) -> bool:
    return (
        (name == "n" and value == 1)
        or (name == "logprobs" and value is False)
        or (name == "top_logprobs" and value == 0)
        or (name == "modalities" and value == ["text"])
    )


def shape_fields(request: ModelRequest) -> list[str]:
    """The fields of the request that would change the result's shape."""
    return [name for name in request.fields_set() if name in SHAPE_FIELDS]


def dropped_fields(provider: ModelProvider, request: ModelRequest) -> list[str]:
    """The request's fields the provider will not honour (they are left out of its call)."""
    honoured = provider.honours(request)
    return [name for name in request.fields_set() if name not in honoured and name not in SHAPE_FIELDS]


@dataclass(frozen=True)
class ModelReply:
    content: str | None
    finish_reason: FinishReason
    usage: Usage
    tool_calls: Sequence[ToolCall] = field(default_factory=tuple)
    system_fingerprint: str | None = None


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
    system_fingerprint: str | None = None


StreamEvent = TextDelta | ToolCallDelta | Finish


class ModelProvider(Protocol):
    """Adapters raise only parley.domain.errors.ProviderError and its subclasses
    (ProviderTimeout, ProviderRateLimited, ProviderRejected), never a transport exception."""

    name: str

    def models(self) -> Sequence[str]:
        """The model names this provider serves; empty means any name (passed to the provider)."""
        ...

    def honours(self, request: ModelRequest) -> frozenset[str]:
        """The OpenAI request fields (ModelRequest.fields_set names) this adapter sends on or maps
        for this request; the others it leaves out, and the API names them in parley-dropped-params."""
        ...

    def complete(self, request: ModelRequest) -> ModelReply: ...

    def stream(self, request: ModelRequest) -> Iterator[StreamEvent]:
        """Deltas as the model produces them, then exactly one Finish."""
        ...
