"""POST /v1/chat/completions: OpenAI-compatible chat completion, streamed as SSE with stream=true."""

from aws_lambda_powertools.event_handler import Response

from parley.api import ratelimits, replies
from parley.api.app import build_handler, make_app, principal, requires, stream
from parley.api.sse import SSE_HEADERS
from parley.domain.chat import ChatCompletion, ChatCompletionRequest
from parley.services import completions

app = make_app()


RESPONSES = replies.streamed_responses(
    ChatCompletion, replies.CompletionStreamData, "A chat.completion, or with stream=true its chunks as SSE."
)


@app.post("/v1/chat/completions", responses=RESPONSES)
@requires("completions:CreateChatCompletion")
def create_chat_completion(request: ChatCompletionRequest) -> Response[str]:
    return _create(request)


@app.post("/v1/chats/completions", responses=RESPONSES)  # seed 003's stateless path
@requires("completions:CreateChatCompletion")
def create_stateless_chat_completion(request: ChatCompletionRequest) -> Response[str]:
    return _create(request)


def _create(request: ChatCompletionRequest) -> Response[str]:
    caller = principal(app)
    request_id = app.current_event.request_context.request_id or ""
    context = completions.CallContext(request_id=request_id)
    if request.stream:
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        chunks = replies.completion_chunks(
            completions.stream(caller, request, context), request_id, include_usage=include_usage
        )
        headers = {**SSE_HEADERS, **ratelimits.headers(context.quota), **replies.dropped_headers(context.dropped)}
        return stream(chunks, headers=headers)
    completion = replies.completion_body(completions.create(caller, request, context))
    headers = {**ratelimits.headers(context.quota), **replies.dropped_headers(context.dropped)}
    return Response(200, "application/json", completion.model_dump_json(), headers=headers)


@app.post("/openai/v1/chat/completions", responses=RESPONSES)  # OpenAI's base URL .../openai/v1
@requires("completions:CreateChatCompletion")
def openai_create_chat_completion(request: ChatCompletionRequest) -> Response[str]:
    return _create(request)


lambda_handler = build_handler(app)
