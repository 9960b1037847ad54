"""POST /v1/conversations/{conversation_id}/messages: store the user message, answer it with the
conversation's model, store the reply; with `stream: true` the reply streams as SSE events.

While the conversation is handed off to a human, a user's message is stored and answered 202
(HeldSend: no reply, no model call), as JSON even with `stream: true`; an operator's reply
(`role: assistant`, `author: {type: human}`) is stored and answered 200 with the stored message."""

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
from parley.domain.handoffs import HeldSend
from parley.services import conversations, handoffs, messages

app = make_app()


RESPONSES = {
    **replies.streamed_responses(
        Message,
        replies.ConversationStreamEvent,
        "The stored reply, or with stream=true the reply as SSE events; an operator's reply: the stored message.",
    ),
    202: {
        "description": "The conversation is handed off to a human: the message is stored and no model was called "
        "(JSON, with stream=true too).",
        "content": {"application/json": {"model": HeldSend}},
    },
}


def _diverted(answer: handoffs.Diverted) -> Response[str]:
    """A send that called no model (parley.services.handoffs), as JSON."""
    headers = {REPLAY_HEADER: "true"} if answer.replayed else {}
    return Response(answer.status, "application/json", answer.body.model_dump_json(), headers=headers)


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
        if isinstance(streamed, handoffs.Diverted):
            return _diverted(streamed)
        replayed = {REPLAY_HEADER: "true"} if streamed.replayed else {}
        headers = {**SSE_HEADERS, **replayed, **ratelimits.headers(streamed.quota)}
        return stream(replies.conversation_sse(streamed.events, request_id), headers=headers)
    sent = messages.send(caller, conversation_id, body, request_id, key)
    if isinstance(sent, handoffs.Diverted):
        return _diverted(sent)
    headers = {**({REPLAY_HEADER: "true"} if sent.replayed else {}), **ratelimits.headers(sent.quota)}
    return Response(200, "application/json", sent.message.model_dump_json(), headers=headers)


lambda_handler = build_handler(app)
