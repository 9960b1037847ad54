"""DELETE /v1/chats/{chat_id}"""

from typing import Any

from parley.api.app import build_handler, make_app, principal, requires
from parley.services import chats

app = make_app()


@app.delete("/v1/chats/<chat_id>")
@requires("chats:DeleteChat")
def delete_chat(chat_id: str) -> dict[str, Any]:
    chats.delete(principal(app), chat_id)
    return {"id": chat_id, "object": "chat", "deleted": True}


lambda_handler = build_handler(app)
