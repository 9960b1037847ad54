"""POST /v1/conversations/{conversation_id}/sessions: a chat session bound to a model (seed 002)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.conversations import ChatSession, SessionCreate
from parley.services import conversations

app = make_app()


@app.post("/v1/conversations/<conversation_id>/sessions", status_code=201)
@requires("conversations:CreateSession")
def create_session(
    conversation_id: str, body: SessionCreate, org_id: Annotated[str | None, Query()] = None
) -> ChatSession:
    caller = principal(app)
    conversations.check_org(caller, org_id)
    return conversations.create_session(caller, conversation_id, body)


lambda_handler = build_handler(app)
