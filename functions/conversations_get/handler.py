"""GET /v1/conversations/{conversation_id} (`include=sessions` adds its chat sessions)."""

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.services import conversations

app = make_app()


@app.get("/v1/conversations/<conversation_id>")
@requires("conversations:GetConversation")
def get_conversation(
    conversation_id: str,
    include: Annotated[Literal["sessions"] | None, Query()] = None,
    org_id: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    caller = principal(app)
    conversations.check_org(caller, org_id)
    found = conversations.get(caller, conversation_id, include_sessions=include == "sessions")
    return found.public()


lambda_handler = build_handler(app)
