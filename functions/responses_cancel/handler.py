"""POST /v1/responses/{response_id}/cancel: cancel a background response. Parley answers every
response within its request (background is refused), so a stored response is never cancellable:
400, as OpenAI answers for a synchronous one."""

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.responses import ResponseObject
from parley.services import responses

app = make_app()


@app.post("/v1/responses/<response_id>/cancel")
@requires("responses:CancelResponse")
def cancel_response(response_id: str) -> ResponseObject:
    return responses.cancel(principal(app), response_id)


lambda_handler = build_handler(app)
