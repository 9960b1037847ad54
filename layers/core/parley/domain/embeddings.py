"""OpenAI's embeddings API (POST /v1/embeddings): the request and the `list` of `embedding`
objects it answers, with usage. https://platform.openai.com/docs/api-reference/embeddings"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_INPUTS = 2048  # OpenAI's limit on the input array
MAX_TOKEN_ID = 2**32 - 1

# The shapes OpenAI takes; their limits are checked by EmbeddingCreate._limits, so every refusal
# names `input` (a union's own errors would name the member: "input.list[str]").
EmbeddingInput = str | list[str] | list[int] | list[list[int]]


class EmbeddingCreate(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={"examples": [{"model": "local", "input": ["Refunds within 30 days.", "Billing"]}]},
    )

    model: str = Field(min_length=1, max_length=256)
    input: EmbeddingInput = Field(
        description="A string, an array of up to 2048 strings, or tokens (an array of token ids, or up to 2048"
        " of them): token ids are decoded with the model's tiktoken encoding (cl100k_base for models that have"
        " none), as OpenAI clients such as LangChain's tokenize. No input may be empty."
    )
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="base64: each vector as little-endian float32 bytes, base64-encoded"
    )
    dimensions: int | None = Field(default=None, ge=1, le=8192)
    user: str | None = Field(default=None, max_length=256)
    # Parley's extensions
    provider_id: str | None = Field(default=None, max_length=64, description="the stored AI provider that embeds")
    input_type: Literal["query", "document"] = Field(
        default="document",
        description="Parley extension: whether the inputs are search queries or the passages searched"
        " (Cohere Embed embeds them differently; other models ignore it)",
    )

    @field_validator("input")
    @classmethod
    def _limits(cls, value: EmbeddingInput) -> EmbeddingInput:
        if isinstance(value, str):
            if not value:
                raise ValueError("the input must not be an empty string")
            return value
        if not value:
            raise ValueError("give at least one input")
        if isinstance(value[0], list):
            if len(value) > MAX_INPUTS:
                raise ValueError(f"at most {MAX_INPUTS} inputs, not {len(value)}")
            arrays: list[list[int]] = value
            for i, ids in enumerate(arrays):
                if not ids:
                    raise ValueError(f"token array {i} is empty")
                if any(not 0 <= token <= MAX_TOKEN_ID for token in ids):
                    raise ValueError(f"token array {i} has an id outside 0..{MAX_TOKEN_ID}")
        elif isinstance(value[0], str):
            if len(value) > MAX_INPUTS:
                raise ValueError(f"at most {MAX_INPUTS} inputs, not {len(value)}")
            empty = [i for i, text in enumerate(value) if not text]
            if empty:
                raise ValueError(f"input {empty[0]} is an empty string; empty strings cannot be embedded")
        elif any(not 0 <= token <= MAX_TOKEN_ID for token in value):
            raise ValueError(f"a token id is outside 0..{MAX_TOKEN_ID}")
        return value


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
