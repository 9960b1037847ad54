"""GET /v1/chats/{chat_id}"""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.chats import Chat
from parley.services import chats

app = make_app()


@app.get("/v1/chats/<chat_id>")
@requires("chats:GetChat")
def get_chat(chat_id: str) -> Chat:
    return chats.get(principal(app), chat_id)


lambda_handler = build_handler(app)
