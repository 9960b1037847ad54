"""POST /v1/conversations/{conversation_id}/messages: store the user message, answer it with the
conversation's model, store the reply; with `stream: true` the reply streams as SSE events."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires, stream
from parley.api.sse import SSE_HEADERS
from parley.domain.conversations import MessageSend
from parley.services import conversations, messages

app = make_app()


@app.post("/v1/conversations/<conversation_id>/messages")
@requires("conversations:SendMessage")
def send_message(
    conversation_id: str, body: MessageSend, org_id: Annotated[str | None, Query()] = None
) -> Response[str]:
    caller = principal(app)
    conversations.check_org(caller, org_id)
    request_id = app.current_event.request_context.request_id or ""
    if body.stream:
        return stream(messages.send_stream(caller, conversation_id, body, request_id), headers=SSE_HEADERS)
    reply = messages.send(caller, conversation_id, body, request_id)
    return Response(200, "application/json", reply.model_dump_json())


lambda_handler = build_handler(app)
