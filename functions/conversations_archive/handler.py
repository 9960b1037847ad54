"""POST /v1/conversations/{conversation_id}/archive"""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.conversations import Conversation
from parley.services import conversations

app = make_app()


@app.post("/v1/conversations/<conversation_id>/archive")
@requires("conversations:ArchiveConversation")
def archive_conversation(conversation_id: str) -> Conversation:
    return conversations.archive(principal(app), conversation_id)


lambda_handler = build_handler(app)
