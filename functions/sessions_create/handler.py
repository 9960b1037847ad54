"""POST /v1/conversations/{conversation_id}/sessions: a chat session bound to a model (seed 002)."""

from aws_lambda_powertools.event_handler import Response

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.conversations import SessionCreate
from parley.services import conversations

app = make_app()


@app.post("/v1/conversations/<conversation_id>/sessions")
@requires("conversations:CreateSession")
def create_session(conversation_id: str, body: SessionCreate) -> Response[str]:
    session = conversations.create_session(principal(app), conversation_id, body)
    return Response(201, "application/json", session.model_dump_json())


lambda_handler = build_handler(app)
