"""PATCH /v1/chats/{chat_id}"""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.chats import Chat, ChatUpdate
from parley.services import chats

app = make_app()


@app.patch("/v1/chats/<chat_id>")
@requires("chats:UpdateChat")
def update_chat(chat_id: str, body: ChatUpdate) -> Chat:
    return chats.update(principal(app), chat_id, body)


lambda_handler = build_handler(app)
