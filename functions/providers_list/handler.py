"""GET /v1/providers: the project's AI providers, cursor-paginated."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.providers import AIProvider
from parley.services import providers

app = make_app()


@app.get("/v1/providers")
@requires("providers:ListProviders")
def list_providers(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
) -> Page[AIProvider]:
    data, after = providers.list_providers(principal(app), limit, position(cursor, providers.PAGES))
    return page(data, after, providers.PAGES)


lambda_handler = build_handler(app)
