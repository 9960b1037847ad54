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


class InputAudio(_Strict):
    data: str
    format: str = Field(max_length=16)


class AudioPart(_Strict):
    """OpenAI's `input_audio` part: accepted by the schema, refused (400) by providers that cannot take it."""

    type: Literal["input_audio"]
    input_audio: InputAudio


class FileRef(_Strict):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(_Strict):
    """OpenAI's `file` part: accepted by the schema, refused (400) by providers that cannot take it."""

    type: Literal["file"]
    file: FileRef
    prompt_cache_breakpoint: dict[str, Any] | None = None


class RefusalPart(_Strict):
    """An assistant message's refusal part (sent back as history)."""

    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[TextPart | ImagePart | AudioPart | FilePart | RefusalPart, Field(discriminator="type")]


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
    # What an assistant message of a chat.completion carries, so `message.model_dump()` can be sent
    # back as history: accepted, and not passed to providers (they are the reply's own metadata).
    annotations: list[dict[str, Any]] | None = None
    audio: dict[str, Any] | None = None
    function_call: FunctionCall | None = None
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

    def part_types(self) -> set[str]:
        """The content part types the message carries (empty for string content)."""
        return {part.type for part in self.content} if isinstance(self.content, list) else set()


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
    include_obfuscation: bool | None = None  # OpenAI's own stream padding; Parley sends none


class LegacyFunction(_Strict):
    """A deprecated `functions` entry (OpenAI's predecessor of `tools`)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class AudioOutput(_Strict):
    format: str = Field(max_length=16)
    voice: str | dict[str, Any]


class Prediction(_Strict):
    type: Literal["content"]
    content: str | list[TextPart]


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]

# OpenAI fields with no typed place in the model port: an OpenAI-compatible provider receives them
# as sent, the other adapters map what they can (parley.providers.*.HONOURS) and the rest is
# dropped and named in the `parley-dropped-params` header.
PASSTHROUGH_FIELDS = (
    "audio",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "metadata",
    "modalities",
    "moderation",
    "n",
    "prediction",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "reasoning_effort",
    "safety_identifier",
    "service_tier",
    "store",
    "top_logprobs",
    "verbosity",
    "web_search_options",
)


class SamplingParams(_Strict):
    """OpenAI's generation fields, shared by every completion request shape."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    tools: list[Tool] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceFunction | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    user: str | None = Field(default=None, max_length=256)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    logit_bias: dict[str, int] | None = Field(default=None, max_length=300)
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    store: bool | None = None
    reasoning_effort: ReasoningEffort | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None
    modalities: list[Literal["text", "audio"]] | None = Field(default=None, max_length=2)
    audio: AudioOutput | None = None
    prediction: Prediction | None = None
    prompt_cache_key: str | None = Field(default=None, max_length=1024)
    prompt_cache_options: dict[str, Any] | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    safety_identifier: str | None = Field(default=None, max_length=256)
    web_search_options: dict[str, Any] | None = None
    moderation: dict[str, Any] | None = None
    functions: list[LegacyFunction] | None = Field(default=None, max_length=128)
    function_call: Literal["none", "auto"] | NamedFunction | None = None

    @model_validator(mode="after")
    def _check_sampling(self) -> SamplingParams:
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise ValueError("stop takes at most 4 sequences")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        if self.metadata is not None and any(len(k) > 64 or len(v) > 512 for k, v in self.metadata.items()):
            raise ValueError("metadata keys are at most 64 characters, values at most 512")
        return self

    def passthrough(self) -> dict[str, Any]:
        """The OpenAI fields without a typed place in the model port that the request sets, as JSON."""
        return {
            name: value
            for name in PASSTHROUGH_FIELDS
            if (value := self.model_dump(mode="json", include={name}, exclude_none=True).get(name)) is not None
        }

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
    audio_tokens: int = 0


class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int = 0
    audio_tokens: int = 0
    accepted_prediction_tokens: int = 0
    rejected_prediction_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None  # set when the provider reports cache hits
    completion_tokens_details: CompletionTokensDetails | None = None

    @classmethod
    def of(cls, prompt: int, completion: int, cached: int | None = None, reasoning: int | None = None) -> Usage:
        details = PromptTokensDetails(cached_tokens=cached) if cached is not None else None
        completion_details = CompletionTokensDetails(reasoning_tokens=reasoning) if reasoning is not None else None
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details=details,
            completion_tokens_details=completion_details,
        )

    def detailed(self) -> Usage:
        """The usage with both detail objects present (zeros where the provider reported none), as
        OpenAI answers it: the same shape in every response and stream."""
        return self.model_copy(
            update={
                "prompt_tokens_details": self.prompt_tokens_details or PromptTokensDetails(),
                "completion_tokens_details": self.completion_tokens_details or CompletionTokensDetails(),
            }
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
