"""GET /v1/conversations/{conversation_id}: `include=sessions` adds its chat sessions, `include=messages`
its newest 100 messages (both: `include=sessions,messages`)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.conversations import Conversation
from parley.services import conversations

app = make_app()


@app.get("/v1/conversations/<conversation_id>")
@requires("conversations:GetConversation")
def get_conversation(
    conversation_id: str,
    include: Annotated[str | None, Query(pattern=r"^(sessions|messages)(,(sessions|messages))?$")] = None,
    org_id: Annotated[str | None, Query()] = None,
) -> Conversation:
    caller = principal(app)
    conversations.check_org(caller, org_id)
    parts = set((include or "").split(","))
    return conversations.get(
        caller, conversation_id, include_sessions="sessions" in parts, include_messages="messages" in parts
    )


lambda_handler = build_handler(app)
