"""POST /v1/chats/{chat_id}/completions, and the same at /v1/chats/{chat_id}/chat/completions, so any
OpenAI client given the base URL .../v1/chats/{chat_id} talks to the chat's stored configuration."""

from aws_lambda_powertools.event_handler import Response

from parley.api.app import build_handler, make_app, principal, requires, stream
from parley.api.sse import SSE_HEADERS
from parley.domain.chats import ChatCompletionInput
from parley.services import chats

app = make_app()


def _complete(chat_id: str, body: ChatCompletionInput) -> Response[str]:
    caller = principal(app)
    request_id = app.current_event.request_context.request_id or ""
    if body.stream:
        return stream(chats.stream(caller, chat_id, body, request_id), headers=SSE_HEADERS)
    return Response(200, "application/json", chats.complete(caller, chat_id, body, request_id).model_dump_json())


@app.post("/v1/chats/<chat_id>/completions")
@requires("chats:CreateChatCompletion")
def chat_completions(chat_id: str, body: ChatCompletionInput) -> Response[str]:
    return _complete(chat_id, body)


@app.post("/v1/chats/<chat_id>/chat/completions")
@requires("chats:CreateChatCompletion")
def openai_client_chat_completions(chat_id: str, body: ChatCompletionInput) -> Response[str]:
    return _complete(chat_id, body)


lambda_handler = build_handler(app)
