"""GET /v1/handoffs?status=pending: the project's handoffs by status, oldest first (an operators' inbox)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.handoffs import Handoff, HandoffStatus
from parley.services import conversations, handoffs

app = make_app()


@app.get("/v1/handoffs")
@requires("conversations:ListHandoffs")
def list_handoff_queue(
    status: Annotated[HandoffStatus, Query()] = "pending",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
    org_id: Annotated[str | None, Query()] = None,
) -> Page[Handoff]:
    caller = principal(app)
    conversations.check_org(caller, org_id)
    data, after = handoffs.queue(caller, status, limit, position(cursor, handoffs.QUEUE_PAGES))
    return page(data, after, handoffs.QUEUE_PAGES)


lambda_handler = build_handler(app)
