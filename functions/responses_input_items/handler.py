"""GET /v1/responses/{response_id}/input_items: a stored response's input items, OpenAI's list
(`after` an item id, `limit`, `order` desc by default)."""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.responses import InputItemList
from parley.services import responses

app = make_app()


@app.get("/v1/responses/<response_id>/input_items")
@requires("responses:ListInputItems")
def list_input_items(
    response_id: str,
    after: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    include: Annotated[list[str] | None, Query()] = None,
) -> InputItemList:
    return responses.input_items(principal(app), response_id, limit=limit, order=order, after=after)


@app.get("/openai/v1/responses/<response_id>/input_items")  # OpenAI's base URL .../openai/v1
@requires("responses:ListInputItems")
def openai_list_input_items(
    response_id: str,
    after: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    include: Annotated[list[str] | None, Query()] = None,
) -> InputItemList:
    return responses.input_items(principal(app), response_id, limit=limit, order=order, after=after)


lambda_handler = build_handler(app)
