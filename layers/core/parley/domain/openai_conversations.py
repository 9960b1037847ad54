"""OpenAI's Conversations API (`/openai/v1/conversations`) over Parley's own conversations.

A conversation is a Parley conversation (`conv_...`, the same record either API reads and
writes), and its items are that conversation's messages: a user message is a `message` item
(role user, `input_text`), an assistant reply a `message` item (`output_text`) followed by one
`function_call` item per tool call it made, a tool message a `function_call_output` item. Item
ids are the message ids (`msg_...`), and for the calls and outputs ids derived from them
(parley.domain.responses.function_item_id, `fco_` + the tool message's id suffix), so every item
id names its message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from parley.domain.responses import InputItem

MAX_ITEMS_PER_REQUEST = 20  # OpenAI's: "You may add up to 20 items at a time."
MAX_METADATA_PAIRS = 16

# OpenAI's Metadata: up to 16 pairs, keys at most 64 characters, values at most 512.
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=512)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=MAX_METADATA_PAIRS)]
Includable = Literal[
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class OpenAIConversationCreate(_Strict):
    """POST /openai/v1/conversations: initial items (at most 20) and metadata."""

    items: Annotated[list[InputItem], Field(max_length=MAX_ITEMS_PER_REQUEST)] | None = None
    metadata: Metadata | None = None


class OpenAIConversationUpdate(_Strict):
    """POST /openai/v1/conversations/{id}: the metadata replaces the conversation's (null clears it)."""

    metadata: Metadata | None


class OpenAIItemsCreate(_Strict):
    """POST /openai/v1/conversations/{id}/items: 1 to 20 items, appended in order."""

    items: Annotated[list[InputItem], Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)]


class OpenAIConversation(BaseModel):
    """openai.types.conversations.Conversation"""

    id: str
    object: Literal["conversation"] = "conversation"
    created_at: int
    metadata: dict[str, Any]


class OpenAIConversationDeleted(BaseModel):
    """openai.types.conversations.ConversationDeletedResource"""

    id: str
    object: Literal["conversation.deleted"] = "conversation.deleted"
    deleted: bool = True


class OpenAIConversationItem(BaseModel):
    """openai.types.conversations.ConversationItem: a `message` (role, content), `function_call`
    (call_id, name, arguments) or `function_call_output` (call_id, output) item, the kinds a
    Parley conversation holds; the fields beyond these are the kind's own."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: Literal["message", "function_call", "function_call_output"]
    status: Literal["in_progress", "completed", "incomplete"]


class OpenAIItemList(BaseModel):
    """openai.types.conversations.ConversationItemList (an empty page's ids are empty strings:
    the SDK's type has them as required strings)."""

    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str
    last_id: str
    has_more: bool
