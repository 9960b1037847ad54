"""GET /v1/audit-events: the project's audit trail, newest first, cursor-paginated."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.api.cursors import position
from parley.api.lists import DEFAULT_LIMIT, MAX_LIMIT, Page, page
from parley.domain.usage import AuditEvent
from parley.services import metering

app = make_app()


@app.get("/v1/audit-events")
@requires("audit:ListAuditEvents")
def list_audit_events(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(min_length=1)] = None,
) -> Page[AuditEvent]:
    events, after = metering.audit_events(principal(app), limit, position(cursor, metering.AUDIT_PAGES))
    return page(events, after, metering.AUDIT_PAGES)


lambda_handler = build_handler(app)
