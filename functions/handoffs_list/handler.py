"""GET /v1/conversations/{conversation_id}/handoffs: the conversation's handoffs, oldest first."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.handoffs import Handoff
from parley.services import conversations, handoffs

app = make_app()


@app.get("/v1/conversations/<conversation_id>/handoffs")
@requires("conversations:ListHandoffs")
def list_handoffs(
    conversation_id: str,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
    org_id: Annotated[str | None, Query()] = None,
) -> Page[Handoff]:
    caller = principal(app)
    conversations.check_org(caller, org_id)
    data, after = handoffs.history(caller, conversation_id, limit, position(cursor, handoffs.HISTORY_PAGES))
    return page(data, after, handoffs.HISTORY_PAGES)


lambda_handler = build_handler(app)
