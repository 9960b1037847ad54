"""POST /v1/chats/{chat_id}/completions, and the same at /v1/chats/{chat_id}/chat/completions, so any
OpenAI client given the base URL .../v1/chats/{chat_id} talks to the chat's stored configuration."""

from aws_lambda_powertools.event_handler import Response

from parley.api import ratelimits, replies
from parley.api.app import build_handler, make_app, principal, requires, stream
from parley.api.sse import SSE_HEADERS
from parley.domain.chat import ChatCompletion
from parley.domain.chats import ChatCompletionInput
from parley.services import chats, completions

app = make_app()


def _complete(chat_id: str, body: ChatCompletionInput) -> Response[str]:
    caller = principal(app)
    request_id = app.current_event.request_context.request_id or ""
    context = completions.CallContext()
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = replies.completion_chunks(
            chats.stream(caller, chat_id, body, request_id, context), request_id, include_usage=include_usage
        )
        headers = {**SSE_HEADERS, **ratelimits.headers(context.quota), **replies.dropped_headers(context.dropped)}
        return stream(chunks, headers=headers)
    completion = replies.completion_body(chats.complete(caller, chat_id, body, request_id, context))
    headers = {**ratelimits.headers(context.quota), **replies.dropped_headers(context.dropped)}
    return Response(200, "application/json", completion.model_dump_json(), headers=headers)


RESPONSES = replies.streamed_responses(
    ChatCompletion, replies.CompletionStreamData, "A chat.completion, or with stream=true its chunks as SSE."
)


@app.post("/v1/chats/<chat_id>/completions", responses=RESPONSES)
@requires("chats:CreateChatCompletion")
def chat_completions(chat_id: str, body: ChatCompletionInput) -> Response[str]:
    return _complete(chat_id, body)


@app.post("/v1/chats/<chat_id>/chat/completions", responses=RESPONSES)
@requires("chats:CreateChatCompletion")
def openai_client_chat_completions(chat_id: str, body: ChatCompletionInput) -> Response[str]:
    return _complete(chat_id, body)


lambda_handler = build_handler(app)
