"""POST /v1/chats: a stored completion configuration (AI provider, system message, model)."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.chats import Chat, ChatCreate
from parley.services import chats

app = make_app()


@app.post("/v1/chats", status_code=201)
@requires("chats:CreateChat")
def create_chat(body: ChatCreate) -> Chat:
    return chats.create(principal(app), body)


lambda_handler = build_handler(app)
