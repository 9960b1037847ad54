"""OpenAI's Conversations API under /openai/v1 (one function for its routes): conversations and
their items, in OpenAI's shapes, over Parley's own conversations and messages."""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.openai_conversations import (
    Includable,
    OpenAIConversation,
    OpenAIConversationCreate,
    OpenAIConversationDeleted,
    OpenAIConversationItem,
    OpenAIConversationUpdate,
    OpenAIItemList,
    OpenAIItemsCreate,
)
from parley.services import openai_conversations as service

app = make_app()

# `include` names output OpenAI's hosted tools add (search results, images, logprobs): Parley's
# items carry none of it, so every value is accepted and adds nothing.
Include = Annotated[list[Includable] | None, Query()]


@app.post("/openai/v1/conversations")
@requires("conversations:CreateConversation")
def openai_create_conversation(body: OpenAIConversationCreate) -> OpenAIConversation:
    return service.create(principal(app), body)


@app.get("/openai/v1/conversations/<conversation_id>")
@requires("conversations:GetConversation")
def openai_get_conversation(conversation_id: str) -> OpenAIConversation:
    return service.retrieve(principal(app), conversation_id)


@app.post("/openai/v1/conversations/<conversation_id>")
@requires("conversations:UpdateConversation")
def openai_update_conversation(conversation_id: str, body: OpenAIConversationUpdate) -> OpenAIConversation:
    return service.update(principal(app), conversation_id, body)


@app.delete("/openai/v1/conversations/<conversation_id>")
@requires("conversations:DeleteConversation")
def openai_delete_conversation(conversation_id: str) -> OpenAIConversationDeleted:
    return service.delete(principal(app), conversation_id)


@app.get("/openai/v1/conversations/<conversation_id>/items")
@requires("conversations:ListMessages")
def openai_list_items(
    conversation_id: str,
    after: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    include: Include = None,
) -> OpenAIItemList:
    return service.list_items(principal(app), conversation_id, limit=limit, order=order, after=after)


@app.post("/openai/v1/conversations/<conversation_id>/items")
@requires("conversations:CreateItems")
def openai_create_items(conversation_id: str, body: OpenAIItemsCreate, include: Include = None) -> OpenAIItemList:
    return service.create_items(principal(app), conversation_id, body)


@app.get("/openai/v1/conversations/<conversation_id>/items/<item_id>")
@requires("conversations:ListMessages")
def openai_get_item(conversation_id: str, item_id: str, include: Include = None) -> OpenAIConversationItem:
    return OpenAIConversationItem(**service.retrieve_item(principal(app), conversation_id, item_id))


@app.delete("/openai/v1/conversations/<conversation_id>/items/<item_id>")
@requires("conversations:DeleteItem")
def openai_delete_item(conversation_id: str, item_id: str) -> OpenAIConversation:
    return service.delete_item(principal(app), conversation_id, item_id)


lambda_handler = build_handler(app)
