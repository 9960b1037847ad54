"""GET /v1/responses/{response_id}: a stored response, as OpenAI answers it."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.responses import ResponseObject
from parley.services import responses

app = make_app()


@app.get("/v1/responses/<response_id>")
@requires("responses:GetResponse")
def get_response(response_id: str) -> ResponseObject:
    return responses.retrieve(principal(app), response_id)


@app.get("/openai/v1/responses/<response_id>")  # OpenAI's base URL .../openai/v1
@requires("responses:GetResponse")
def openai_get_response(response_id: str) -> ResponseObject:
    return responses.retrieve(principal(app), response_id)


lambda_handler = build_handler(app)
