"""GET /v1/usage: token and cost sums for a date range, grouped by model or by API key."""

from datetime import date
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.usage import UsageReport
from parley.services import metering

app = make_app()


@app.get("/v1/usage")
@requires("usage:GetUsage")
def get_usage(
    start_date: Annotated[date | None, Query()] = None,
    end_date: Annotated[date | None, Query()] = None,
    group_by: Annotated[Literal["model", "key"], Query()] = "model",
) -> UsageReport:
    return metering.usage_report(principal(app), start_date, end_date, group_by)


lambda_handler = build_handler(app)
