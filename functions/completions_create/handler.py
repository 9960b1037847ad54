"""POST /v1/chat/completions: OpenAI-compatible chat completion, streamed as SSE with stream=true."""

from aws_lambda_powertools.event_handler import Response

from parley.api.app import build_handler, make_app, principal, requires, stream
from parley.api.sse import SSE_HEADERS
from parley.domain.chat import ChatCompletionRequest
from parley.services import completions

app = make_app()


@app.post("/v1/chat/completions")
@requires("completions:CreateChatCompletion")
def create_chat_completion(request: ChatCompletionRequest) -> Response[str]:
    return _create(request)


@app.post("/v1/chats/completions")  # seed 003's stateless path
@requires("completions:CreateChatCompletion")
def create_stateless_chat_completion(request: ChatCompletionRequest) -> Response[str]:
    return _create(request)


def _create(request: ChatCompletionRequest) -> Response[str]:
    caller = principal(app)
    context = completions.CallContext(request_id=app.current_event.request_context.request_id or "")
    if request.stream:
        return stream(completions.stream(caller, request, context), headers=SSE_HEADERS)
    completion = completions.create(caller, request, context)
    return Response(200, "application/json", completion.model_dump_json())


lambda_handler = build_handler(app)
