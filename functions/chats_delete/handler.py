"""DELETE /v1/chats/{chat_id}"""

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.schemas import Deleted
from parley.services import chats

app = make_app()


@app.delete("/v1/chats/<chat_id>")
@requires("chats:DeleteChat")
def delete_chat(chat_id: str) -> Deleted:
    chats.delete(principal(app), chat_id)
    return Deleted(id=chat_id, object="chat")


lambda_handler = build_handler(app)
