"""POST /v1/responses/{response_id}/cancel: cancel a queued or in-progress background response
(its generation stops, keeping what it produced); a synchronous or finished one is a 400, as on
OpenAI."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.responses import ResponseObject
from parley.services import responses

app = make_app()


@app.post("/v1/responses/<response_id>/cancel")
@requires("responses:CancelResponse")
def cancel_response(response_id: str) -> ResponseObject:
    return responses.cancel(principal(app), response_id)


@app.post("/openai/v1/responses/<response_id>/cancel")  # OpenAI's base URL .../openai/v1
@requires("responses:CancelResponse")
def openai_cancel_response(response_id: str) -> ResponseObject:
    return responses.cancel(principal(app), response_id)


lambda_handler = build_handler(app)
