"""DELETE /v1/responses/{response_id}: delete a stored response (and the conversation created for
it, when nothing else was added to it)."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.responses import ResponseDeleted
from parley.services import responses

app = make_app()


@app.delete("/v1/responses/<response_id>")
@requires("responses:DeleteResponse")
def delete_response(response_id: str) -> ResponseDeleted:
    return responses.delete(principal(app), response_id)


@app.delete("/openai/v1/responses/<response_id>")  # OpenAI's base URL .../openai/v1
@requires("responses:DeleteResponse")
def openai_delete_response(response_id: str) -> ResponseDeleted:
    return responses.delete(principal(app), response_id)


lambda_handler = build_handler(app)
