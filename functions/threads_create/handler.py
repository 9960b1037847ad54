"""POST /v1/conversations/{conversation_id}/threads: a thread anchored to a message of the conversation."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.threads import Thread, ThreadCreate
from parley.services import threads

app = make_app()


@app.post("/v1/conversations/<conversation_id>/threads", status_code=201)
@requires("conversations:CreateThread")
def create_thread(conversation_id: str, body: ThreadCreate) -> Thread:
    return threads.create(principal(app), conversation_id, body)


lambda_handler = build_handler(app)
