"""Chats (seed 003): a stored completion configuration, reused by id."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from parley.domain.chat import ChatMessage, ResponseFormat, StreamOptions, Tool, ToolChoiceFunction


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ChatCreate(_Strict):
    ai_provider_id: str = Field(max_length=64)
    project_id: str | None = Field(default=None, max_length=128, description="seed 003 sends it: must be the key's")
    name: str | None = Field(default=None, max_length=256)
    system_message: str | None = Field(default=None, max_length=100_000)
    model: str | None = Field(default=None, min_length=1, max_length=256)


class ChatUpdate(_Strict):
    ai_provider_id: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=256)
    system_message: str | None = Field(default=None, max_length=100_000)
    model: str | None = Field(default=None, min_length=1, max_length=256)


class Chat(BaseModel):
    id: str
    object: Literal["chat"] = "chat"
    project_id: str
    ai_provider_id: str
    name: str | None = None
    system_message: str | None = None
    model: str | None = None
    created_at: str
    updated_at: str


class ChatCompletionInput(_Strict):
    """POST /v1/chats/{id}/completions: the messages and sampling; the rest comes from the chat.

    `model` is accepted because OpenAI clients always send one; the chat's own model (or its
    provider's default_model) wins when it has one.
    """

    messages: list[ChatMessage] = Field(min_length=1, max_length=4096)
    model: str | None = Field(default=None, max_length=256)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: Literal[1] = 1
    tools: list[Tool] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceFunction | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    user: str | None = Field(default=None, max_length=256)
    stream: bool = False
    stream_options: StreamOptions | None = None

    @model_validator(mode="after")
    def _check(self) -> ChatCompletionInput:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        return self
