"""PATCH /v1/conversations/{conversation_id}: title, metadata, model, provider, system prompt, context."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.conversations import Conversation, ConversationUpdate
from parley.services import conversations

app = make_app()


@app.patch("/v1/conversations/<conversation_id>")
@requires("conversations:UpdateConversation")
def update_conversation(conversation_id: str, body: ConversationUpdate) -> Conversation:
    return conversations.update(principal(app), conversation_id, body)


lambda_handler = build_handler(app)
