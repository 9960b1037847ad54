"""GET /v1/api-keys: the project's keys (never their secrets), cursor-paginated."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.keys import PROJECT_ID_PATTERN, ApiKey
from parley.services import keys

app = make_app()


@app.get("/v1/api-keys")
@requires("api_keys:ListApiKeys")
def list_api_keys(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
    project_id: Annotated[str | None, Query(pattern=PROJECT_ID_PATTERN)] = None,
) -> Page[ApiKey]:
    data, after = keys.list_keys(principal(app), limit, position(cursor, keys.KEY_PAGES), project_id)
    return page(data, after, keys.KEY_PAGES)


lambda_handler = build_handler(app)
