"""POST /v1/chats: a stored completion configuration (AI provider, system message, model)."""

from aws_lambda_powertools.event_handler import Response

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.chats import ChatCreate
from parley.services import chats

app = make_app()


@app.post("/v1/chats")
@requires("chats:CreateChat")
def create_chat(body: ChatCreate) -> Response[str]:
    return Response(201, "application/json", chats.create(principal(app), body).model_dump_json())


lambda_handler = build_handler(app)
