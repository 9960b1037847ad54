"""OpenAI-compatible chat completion shapes (request, response, stream chunk), plus Parley's
extensions (`provider_id`, `system_message`, `use_rag`, `index_id`).

Requests are validated strictly (no string-to-number coercion, unknown fields refused), as
OpenAI's API does, so a client learns about a typo instead of having it silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from parley.domain.indexes import Citation, RagOptions
from parley.domain.providers import FallbackTarget

Role = Literal["system", "developer", "user", "assistant", "tool"]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageUrl(_Strict):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageUrl


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class FunctionCall(_Strict):
    name: str
    arguments: str


class ToolCall(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


def _message_schema(schema: dict[str, Any]) -> None:
    """The role rules of ChatMessage._check_role_fields, as JSON schema alternatives."""
    given = {"anyOf": [{"type": "string"}, {"type": "array"}]}  # content that is not null
    absent = {"type": "null"}
    no_calls = {"anyOf": [{"type": "null"}, {"type": "array", "maxItems": 0}]}
    schema["anyOf"] = [
        {  # the server puts the document's text
            "required": ["document_id"],
            "properties": {
                "document_id": {"type": "string"},
                "role": {"enum": ["user", "system", "developer"]},
                "content": absent,
            },
        },
        {
            "required": ["content"],
            "properties": {
                "role": {"enum": ["system", "developer", "user"]},
                "content": given,
                "document_id": absent,
                "tool_calls": no_calls,
            },
        },
        {
            "required": ["content", "tool_call_id"],
            "properties": {
                "role": {"const": "tool"},
                "content": given,
                "tool_call_id": {"type": "string", "minLength": 1},
                "document_id": absent,
                "tool_calls": no_calls,
            },
        },
        {
            "required": ["content"],
            "properties": {"role": {"const": "assistant"}, "content": given, "document_id": absent},
        },
        {
            "required": ["tool_calls"],
            "properties": {
                "role": {"const": "assistant"},
                "tool_calls": {"type": "array", "minItems": 1},
                "document_id": absent,
            },
        },
    ]


class ChatMessage(_Strict):
    model_config = ConfigDict(json_schema_extra=_message_schema)

    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None
    document_id: str | None = Field(default=None, max_length=64, description="the server puts the document's text")

    @model_validator(mode="after")
    def _check_role_fields(self) -> ChatMessage:
        if self.document_id is not None:
            if self.content is not None:
                raise ValueError("give content or document_id, not both")
            if self.role not in ("user", "system", "developer"):
                raise ValueError("document_id is for user and system messages")
            return self
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.role == "assistant":
            if self.content is None and not self.tool_calls:
                raise ValueError("an assistant message needs content or tool_calls")
        elif self.content is None:
            raise ValueError(f"a {self.role} message needs content")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        return self

    def text(self) -> str:
        """The message's text: the string, or its text parts joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


class FunctionDefinition(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Strict):
    name: str


class ToolChoiceFunction(_Strict):
    type: Literal["function"]
    function: NamedFunction


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class StreamOptions(_Strict):
    include_usage: bool = False


class SamplingParams(_Strict):
    """OpenAI's generation fields, shared by every completion request shape."""

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
    def _check_sampling(self) -> SamplingParams:
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise ValueError("stop takes at most 4 sequences")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        return self

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def stop_sequences(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


def _request_schema(schema: dict[str, Any]) -> None:
    """What the validators below add to the JSON schema: `ai_provider_id` (seed 003's name for
    provider_id, one or the other), and a model unless a provider is named."""
    properties = schema.get("properties", {})
    if "provider_id" in properties:
        properties["ai_provider_id"] = {**properties["provider_id"], "description": "seed 003's name for provider_id"}
    named = [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("model", "provider_id", "ai_provider_id")
    ]
    schema["anyOf"] = named
    schema["not"] = {"required": ["provider_id", "ai_provider_id"]}
    hello = [{"role": "user", "content": "Hello, Parley!"}]
    schema["examples"] = [{"model": "echo", "messages": hello}, {"model": "echo", "messages": hello, "stream": True}]


class ChatCompletionRequest(SamplingParams):
    model_config = ConfigDict(json_schema_extra=_request_schema)

    # Optional only when a provider with a default_model is named (seed 003's stateless form).
    model: str | None = Field(default=None, min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=4096)
    logprobs: Literal[False] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    # Parley's extensions
    provider_id: str | None = Field(
        default=None, validation_alias=AliasChoices("provider_id", "ai_provider_id"), max_length=64
    )
    fallbacks: list[FallbackTarget] | None = Field(default=None, max_length=5)
    system_message: str | None = None
    use_rag: bool | None = Field(
        default=None,
        description="Ground the answer in a knowledge index: its best chunks for the latest user message go into "
        "the model's context (on by default when index_id is given; false turns it off)",
    )
    index_id: str | None = Field(default=None, max_length=64, description="The knowledge index (idx_...)")
    rag: RagOptions | None = Field(default=None, description="Retrieval settings (top_k, min_score, filter)")

    @model_validator(mode="after")
    def _check(self) -> ChatCompletionRequest:
        if self.model is None and self.provider_id is None:
            raise ValueError("model is required (or name a provider_id whose default_model serves the request)")
        return self


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None  # set when the provider reports cache hits

    @classmethod
    def of(cls, prompt: int, completion: int, cached: int | None = None) -> Usage:
        details = PromptTokensDetails(cached_tokens=cached) if cached is not None else None
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details=details,
        )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: FinishReason


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    citations: list[Citation] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Parley's extension: the knowledge chunks retrieved for this answer (with use_rag)",
    )
