"""POST /v1/embeddings: OpenAI-compatible embeddings (the built-in `local` model on the local
server; stored openai and bedrock providers anywhere)."""

from aws_lambda_powertools.event_handler import Response

from parley.api import embeddings, ratelimits
from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.embeddings import EmbeddingCreate, EmbeddingList
from parley.services.completions import CallContext
from parley.services.embeddings import ROUTE

app = make_app()

CREATED = {
    200: {
        "description": "One embedding per input, in order, and the tokens embedded.",
        "content": {"application/json": {"model": EmbeddingList}},
    }
}


@app.post("/v1/embeddings", responses=CREATED)
@requires("embeddings:CreateEmbedding")
def create_embeddings(request: EmbeddingCreate) -> Response[str]:
    context = CallContext(route=ROUTE, request_id=app.current_event.request_context.request_id or "")
    body = embeddings.create(principal(app), request, context)
    return Response(200, "application/json", body, headers=ratelimits.headers(context.quota))


@app.post("/openai/v1/embeddings", responses=CREATED)  # OpenAI's base URL .../openai/v1
@requires("embeddings:CreateEmbedding")
def openai_create_embeddings(request: EmbeddingCreate) -> Response[str]:
    return create_embeddings(request)


lambda_handler = build_handler(app)
