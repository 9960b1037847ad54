"""POST /v1/conversations/{conversation_id}/archive"""

from typing import Any

from parley.api.app import build_handler, make_app, principal, requires
from parley.services import conversations

app = make_app()


@app.post("/v1/conversations/<conversation_id>/archive")
@requires("conversations:ArchiveConversation")
def archive_conversation(conversation_id: str) -> dict[str, Any]:
    return conversations.archive(principal(app), conversation_id).public()


lambda_handler = build_handler(app)
