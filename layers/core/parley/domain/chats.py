"""Chats (seed 003): a stored completion configuration, reused by id."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from parley.domain.chat import ChatMessage, SamplingParams
from parley.domain.indexes import RagOptions
from parley.domain.records import ProjectRecord

_INDEX = "A knowledge index (idx_...): every completion of the chat retrieves from it (RAG)"


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ChatCreate(_Strict):
    ai_provider_id: str = Field(max_length=64)
    project_id: str | None = Field(default=None, max_length=128, description="seed 003 sends it: must be the key's")
    name: str | None = Field(default=None, max_length=256)
    system_message: str | None = Field(default=None, max_length=100_000)
    model: str | None = Field(default=None, min_length=1, max_length=256)
    index_id: str | None = Field(default=None, max_length=64, description=_INDEX)


class ChatUpdate(_Strict):
    ai_provider_id: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=256)
    system_message: str | None = Field(default=None, max_length=100_000)
    model: str | None = Field(default=None, min_length=1, max_length=256)
    index_id: str | None = Field(default=None, max_length=64, description=_INDEX)


class Chat(BaseModel):
    id: str
    object: Literal["chat"] = "chat"
    project_id: str
    ai_provider_id: str
    name: str | None = None
    system_message: str | None = None
    model: str | None = None
    index_id: str | None = None
    created_at: str
    updated_at: str


class ChatCompletionInput(SamplingParams):
    """POST /v1/chats/{id}/completions: the messages and sampling; the rest comes from the chat.

    `model` is accepted because OpenAI clients always send one; the chat's own model (or its
    provider's default_model) wins when it has one.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"messages": [{"role": "user", "content": "Hello!"}]},
                {"messages": [{"role": "user", "content": "Hi"}], "stream": True},
            ]
        }
    )

    messages: list[ChatMessage] = Field(min_length=1, max_length=4096)
    model: str | None = Field(default=None, max_length=256)
    use_rag: bool | None = Field(
        default=None, description="false: no retrieval for this call, even with the chat's index"
    )
    index_id: str | None = Field(
        default=None, max_length=64, description="A knowledge index for this call (else the chat's)"
    )
    rag: RagOptions | None = None


class ChatRecord(ProjectRecord):
    ai_provider_id: str
    name: str | None = None
    system_message: str | None = None
    model: str | None = None
    index_id: str | None = None
    created_at: str
    updated_at: str
    version: int = 1
