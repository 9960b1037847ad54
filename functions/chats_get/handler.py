"""GET /v1/chats/{chat_id}"""

from typing import Any

from parley.api.app import build_handler, make_app, principal, requires
from parley.services import chats

app = make_app()


@app.get("/v1/chats/<chat_id>")
@requires("chats:GetChat")
def get_chat(chat_id: str) -> dict[str, Any]:
    return chats.get(principal(app), chat_id).model_dump(mode="json")


lambda_handler = build_handler(app)
