"""POST /v1/conversations/{conversation_id}/sessions: a chat session bound to a model (seed 002)."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.conversations import SessionCreate
from parley.services import conversations

app = make_app()


@app.post("/v1/conversations/<conversation_id>/sessions")
@requires("conversations:CreateSession")
def create_session(
    conversation_id: str, body: SessionCreate, org_id: Annotated[str | None, Query()] = None
) -> Response[str]:
    caller = principal(app)
    conversations.check_org(caller, org_id)
    session = conversations.create_session(caller, conversation_id, body)
    return Response(201, "application/json", session.model_dump_json())


lambda_handler = build_handler(app)
