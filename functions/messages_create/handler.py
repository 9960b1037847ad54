"""POST /v1/conversations/{conversation_id}/messages: store the user message, answer it with the
conversation's model, store the reply; with `stream: true` the reply streams as SSE events."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api import ratelimits, replies
from parley.api.app import (
    build_handler,
    idempotency_key,
    idempotent_in_service,
    make_app,
    principal,
    requires,
    stream,
)
from parley.api.idempotency import REPLAY_HEADER
from parley.api.sse import SSE_HEADERS
from parley.domain.conversations import Message, MessageSend
from parley.services import conversations, messages

app = make_app()


RESPONSES = replies.streamed_responses(
    Message, replies.ConversationStreamEvent, "The stored reply, or with stream=true the reply as SSE events."
)


@app.post("/v1/conversations/<conversation_id>/messages", responses=RESPONSES)
@requires("conversations:SendMessage")
@idempotent_in_service  # the key is stored with the pair (parley.services.messages)
def send_message(
    conversation_id: str, body: MessageSend, org_id: Annotated[str | None, Query()] = None
) -> Response[str]:
    caller = principal(app)
    conversations.check_org(caller, org_id)
    request_id = app.current_event.request_context.request_id or ""
    key = idempotency_key(app)
    if body.stream:
        streamed = messages.send_stream(caller, conversation_id, body, request_id, key)
        replayed = {REPLAY_HEADER: "true"} if streamed.replayed else {}
        headers = {**SSE_HEADERS, **replayed, **ratelimits.headers(streamed.quota)}
        return stream(replies.conversation_sse(streamed.events, request_id), headers=headers)
    sent = messages.send(caller, conversation_id, body, request_id, key)
    headers = {**({REPLAY_HEADER: "true"} if sent.replayed else {}), **ratelimits.headers(sent.quota)}
    return Response(200, "application/json", sent.message.model_dump_json(), headers=headers)


lambda_handler = build_handler(app)
