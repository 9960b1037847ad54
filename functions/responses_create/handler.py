"""POST /v1/responses: OpenAI's Responses API, stored in a Parley conversation (store: false stores
nothing); with stream=true OpenAI's typed events as SSE; with background=true stored `queued`,
answered at once and generated after the answer is sent (parley.api.app.after_response)."""

from aws_lambda_powertools.event_handler import Response

from parley.api import ratelimits, replies
from parley.api.app import after_response, build_handler, make_app, principal, requires, stream
from parley.api.responses import EVENT_TYPES, ResponsesStreamData, response_events
from parley.api.sse import SSE_HEADERS
from parley.domain.responses import ResponseCreate, ResponseObject
from parley.services import responses

app = make_app()

RESPONSES = {
    200: {
        "description": "A response object, or with stream=true its events as SSE.",
        "content": {
            "application/json": {"model": ResponseObject},
            replies.SSE_MEDIA: {"model": ResponsesStreamData, "x-parley-sse": {"events": list(EVENT_TYPES)}},
        },
    }
}


@app.post("/v1/responses", responses=RESPONSES)
@requires("responses:CreateResponse")
def create_response(body: ResponseCreate) -> Response[str]:
    caller = principal(app)
    request_id = app.current_event.request_context.request_id or ""
    context = responses.CallContext(request_id=request_id)
    if body.background:  # stored queued and answered now; generated once this answer is sent
        queued, generate = responses.start_background(caller, body, context)
        after_response(generate)
        return Response(200, "application/json", queued.model_dump_json(), headers=ratelimits.headers(context.quota))
    if body.stream:
        streamed = responses.stream(caller, body, context)
        headers = {**SSE_HEADERS, **ratelimits.headers(context.quota), **replies.dropped_headers(context.dropped)}
        return stream(response_events(streamed, request_id), headers=headers)
    created = responses.create(caller, body, context)
    headers = {**ratelimits.headers(context.quota), **replies.dropped_headers(context.dropped)}
    return Response(200, "application/json", created.model_dump_json(), headers=headers)


@app.post("/openai/v1/responses", responses=RESPONSES)  # OpenAI's base URL .../openai/v1
@requires("responses:CreateResponse")
def openai_create_response(body: ResponseCreate) -> Response[str]:
    return create_response(body)


lambda_handler = build_handler(app)
