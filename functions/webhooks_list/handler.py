"""GET /v1/webhooks: the project's webhooks (never their secrets), cursor-paginated."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.webhooks import Webhook
from parley.services import webhooks

app = make_app()


@app.get("/v1/webhooks")
@requires("webhooks:ListWebhooks")
def list_webhooks(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
) -> Page[Webhook]:
    data, after = webhooks.list_webhooks(principal(app), limit, position(cursor, webhooks.WEBHOOK_PAGES))
    return page(data, after, webhooks.WEBHOOK_PAGES)


lambda_handler = build_handler(app)
