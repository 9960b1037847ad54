"""DELETE /v1/conversations/{conversation_id}: the conversation, its messages and sessions, for good."""

from typing import Any

from parley.api.app import build_handler, make_app, principal, requires
from parley.services import conversations

app = make_app()


@app.delete("/v1/conversations/<conversation_id>")
@requires("conversations:DeleteConversation")
def delete_conversation(conversation_id: str) -> dict[str, Any]:
    conversations.delete(principal(app), conversation_id)
    return {"id": conversation_id, "object": "conversation", "deleted": True}


lambda_handler = build_handler(app)
