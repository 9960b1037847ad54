"""DELETE /v1/conversations/{conversation_id}: the conversation, its messages and sessions, for good."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.schemas import Deleted
from parley.services import conversations

app = make_app()


@app.delete("/v1/conversations/<conversation_id>")
@requires("conversations:DeleteConversation")
def delete_conversation(conversation_id: str) -> Deleted:
    conversations.delete(principal(app), conversation_id)
    return Deleted(id=conversation_id, object="conversation")


lambda_handler = build_handler(app)
