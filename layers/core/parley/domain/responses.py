"""OpenAI's Responses API (`/v1/responses`): the request, the stored record, and the response as
OpenAI shapes it.

A response is one model call's exchange stored in a Parley conversation (parley.services.responses):
its input items are messages of that conversation and its output is the reply message that follows
them. The record (`resp_...`) says which conversation and which seqs, and keeps what the messages
cannot: the request's settings and its system/developer input items.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from parley.domain.chat import ToolCall, Usage
from parley.domain.records import StoredRecord

MAX_INPUT_ITEMS = 200
MAX_TOOLS = 128
INPUT_ITEM_TYPES = ("message", "function_call", "function_call_output")


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


# ------------------------------------------------------------------ input items


class InputText(_Strict):
    type: Literal["input_text"]
    text: str
    prompt_cache_breakpoint: dict[str, Any] | None = None


class OutputText(_Strict):
    """An assistant message's text, sent back as history."""

    type: Literal["output_text"]
    text: str
    annotations: list[dict[str, Any]] | None = None
    logprobs: list[dict[str, Any]] | None = None


class InputImage(_Strict):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["auto", "low", "high", "original"] | None = None
    prompt_cache_breakpoint: dict[str, Any] | None = None


class InputFile(_Strict):
    """Accepted by the schema; refused (400) where the provider cannot take it (all of Parley's, today)."""

    type: Literal["input_file"]
    file_data: str | None = None
    file_id: str | None = None
    file_url: str | None = None
    filename: str | None = None
    detail: str | None = None
    prompt_cache_breakpoint: dict[str, Any] | None = None


class Refusal(_Strict):
    type: Literal["refusal"]
    refusal: str


def _part_tag(value: Any) -> str | None:
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


ContentPart = Annotated[
    Annotated[InputText, Tag("input_text")]
    | Annotated[OutputText, Tag("output_text")]
    | Annotated[InputImage, Tag("input_image")]
    | Annotated[InputFile, Tag("input_file")]
    | Annotated[Refusal, Tag("refusal")],
    Discriminator(_part_tag),
]


class MessageItem(_Strict):
    """A message: the easy form ({role, content}) or the typed one (type "message", with id and status)."""

    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[ContentPart]
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None
    phase: Literal["commentary", "final_answer"] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(
            p.text if isinstance(p, InputText | OutputText) else p.refusal if isinstance(p, Refusal) else ""
            for p in self.content
        )

    def part_types(self) -> set[str]:
        return {p.type for p in self.content} if isinstance(self.content, list) else set()


class FunctionCallItem(_Strict):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=64)
    arguments: str
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None
    namespace: str | None = None


class FunctionCallOutputItem(_Strict):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=128)
    output: str | list[ContentPart]
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None

    def text(self) -> str:
        if isinstance(self.output, str):
            return self.output
        return "".join(p.text for p in self.output if isinstance(p, InputText | OutputText))


def _item_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return str(value.get("type", "message"))
    return getattr(value, "type", None)


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")],
    Discriminator(_item_tag),
]


# ------------------------------------------------------------------ tools, text format


class FunctionTool(_Strict):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    defer_loading: bool | None = None


def _tool_tag(value: Any) -> str | None:
    return str(value.get("type")) if isinstance(value, dict) else getattr(value, "type", None)


# Only function tools: a hosted tool type (web_search, file_search, ...) is refused naming its type.
ResponseTool = Annotated[Annotated[FunctionTool, Tag("function")], Discriminator(_tool_tag)]


class ResponseToolChoiceFunction(_Strict):
    type: Literal["function"]
    name: str


class ToolChoiceAllowed(_Strict):
    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]]


class FormatText(_Strict):
    type: Literal["text"]


class FormatJsonObject(_Strict):
    type: Literal["json_object"]


class FormatJsonSchema(_Strict):
    type: Literal["json_schema"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True, serialize_by_alias=True)


TextFormat = Annotated[FormatText | FormatJsonObject | FormatJsonSchema, Field(discriminator="type")]


class TextConfig(_Strict):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ConversationRef(_Strict):
    id: str = Field(min_length=1, max_length=64)


# ------------------------------------------------------------------ the request


class ResponseCreate(_Strict):
    """POST /v1/responses: every field of the openai SDK's ResponseCreateParams (a test fails when
    the installed SDK grows one). Honoured: see the README's table; the others are accepted and,
    when set, named in `parley-dropped-params`, or refused when they would change the result's
    shape (prompt templates, log probabilities)."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={"examples": [{"model": "echo", "input": "Hello!"}]},
    )

    model: str | None = Field(default=None, min_length=1, max_length=256)
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    previous_response_id: str | None = Field(default=None, min_length=1, max_length=64)
    conversation: str | ConversationRef | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    background: bool | None = None
    tools: list[ResponseTool] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | ResponseToolChoiceFunction | ToolChoiceAllowed | None = None
    parallel_tool_calls: bool | None = None
    max_tool_calls: int | None = Field(default=None, ge=1)
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    user: str | None = Field(default=None, max_length=256)
    safety_identifier: str | None = Field(default=None, max_length=256)
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    reasoning: dict[str, Any] | None = None
    service_tier: str | None = None
    prompt: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    prompt_cache_retention: str | None = None
    context_management: list[dict[str, Any]] | None = None
    moderation: dict[str, Any] | None = None
    image: dict[str, Any] | None = None
    access_programs: dict[str, Any] | None = None
    background_options: dict[str, Any] | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _known_items(cls, value: Any) -> Any:
        """An item type Parley does not take is named (not lost among the union's other errors)."""
        if isinstance(value, list):
            for i, item in enumerate(value):
                kind = item.get("type", "message") if isinstance(item, dict) else None
                if isinstance(kind, str) and kind not in INPUT_ITEM_TYPES:
                    raise ValueError(f"input[{i}] is a {kind!r} item; Parley takes {', '.join(INPUT_ITEM_TYPES)} items")
        return value

    @field_validator("input")
    @classmethod
    def _bounded(cls, value: str | list[Any] | None) -> str | list[Any] | None:
        if isinstance(value, list) and len(value) > MAX_INPUT_ITEMS:
            raise ValueError(f"at most {MAX_INPUT_ITEMS} input items")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key, item in (value or {}).items():
            if not key or len(key) > 64 or len(item) > 512:
                raise ValueError("metadata keys are 1 to 64 characters, values at most 512")
        return value

    @model_validator(mode="after")
    def _check(self) -> ResponseCreate:
        if self.previous_response_id is not None and self.conversation is not None:
            raise ValueError("give previous_response_id or conversation, not both")
        return self

    def conversation_id(self) -> str | None:
        if self.conversation is None:
            return None
        return self.conversation if isinstance(self.conversation, str) else self.conversation.id

    def items(self) -> list[MessageItem | FunctionCallItem | FunctionCallOutputItem]:
        if self.input is None:
            return []
        if isinstance(self.input, str):
            return [MessageItem(role="user", content=self.input)]
        return list(self.input)

    def wants_store(self) -> bool:
        return self.store is not False


# Fields accepted and honoured nowhere (named in parley-dropped-params when set); `reasoning`
# (its effort), `service_tier`, `prompt_cache_key`, `prompt_cache_retention`, `safety_identifier`
# and `text.verbosity` go to the provider as their Chat Completions fields (parley.services.responses).
IGNORED_FIELDS = (
    "include",
    "max_tool_calls",
    "prompt_cache_options",
    "context_management",
    "moderation",
    "image",
    "access_programs",
    "background_options",
    "stream_options",
)


# ------------------------------------------------------------------ the stored record

ResponseStatus = Literal["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]


class ResponseRecord(StoredRecord):
    """A stored response: its conversation and seqs, and what the messages do not hold."""

    id: str
    project_id: str
    conversation_id: str
    owns_conversation: bool = False  # created for this response (deleted with it when nothing follows)
    first_seq: int  # its first input message (== reply_seq when the input stored no message)
    reply_seq: int  # its output: the reply message
    reply_id: str
    created_at: int  # Unix seconds
    model: str
    status: ResponseStatus = "in_progress"
    previous_response_id: str | None = None
    # system/developer input items: {index, role, text}, used in this call only (not messages)
    system_items: list[dict[str, Any]] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)  # the request's echo fields
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    error: dict[str, Any] | None = None
    completed_at: int | None = None


# ------------------------------------------------------------------ the response (OpenAI's shape)


def function_item_id(reply_id: str, index: int) -> str:
    """The id of the reply's `index`th function call item (stable: derived from the reply message)."""
    return f"fc_{reply_id.split('_', 1)[-1]}{index:02d}"


def output_items(reply_id: str, text: str | None, calls: list[ToolCall], status: str) -> list[dict[str, Any]]:
    """A reply's output items: its text as a message item (id: the reply message's), then one
    function_call item per tool call."""
    item_status = {"completed": "completed", "in_progress": "in_progress", "queued": "in_progress"}.get(
        status, "incomplete"
    )
    items: list[dict[str, Any]] = []
    if text:
        items.append(message_item(reply_id, text, item_status))
    items += [function_item(function_item_id(reply_id, i), call, "completed") for i, call in enumerate(calls)]
    return items


def message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def function_item(item_id: str, call: ToolCall, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call.id,
        "name": call.function.name,
        "arguments": call.function.arguments,
        "status": status,
    }


def usage_of(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    detailed = usage.detailed()
    cached = detailed.prompt_tokens_details.cached_tokens if detailed.prompt_tokens_details else 0
    reasoning = detailed.completion_tokens_details.reasoning_tokens if detailed.completion_tokens_details else 0
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": cached or 0, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning or 0},
        "total_tokens": usage.total_tokens,
    }


def status_of(finish_reason: str | None) -> tuple[ResponseStatus, dict[str, str] | None]:
    """A finished reply's response status, and its incomplete_details."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def error_of(status: int, message: str) -> dict[str, str]:
    """A failed response's `error`, in OpenAI's codes."""
    return {"code": "rate_limit_exceeded" if status == 429 else "server_error", "message": message}


class ResponseObject(BaseModel):
    """OpenAI's `response` object (validated in the tests with the openai SDK's own Response type)."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: ResponseStatus
    model: str
    output: list[dict[str, Any]]
    error: dict[str, Any] | None = None
    incomplete_details: dict[str, Any] | None = None
    instructions: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    previous_response_id: str | None = None
    conversation: dict[str, str] | None = None
    usage: dict[str, Any] | None = None
    store: bool = True
    background: bool = False
    text: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] = "disabled"
    user: str | None = None
    safety_identifier: str | None = None
    completed_at: int | None = None


class ResponseDeleted(BaseModel):
    id: str
    object: Literal["response.deleted"] = "response.deleted"
    deleted: Literal[True] = True


class InputItemList(BaseModel):
    """OpenAI's list of a response's input items."""

    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool
