"""GET /v1/usage: token and cost sums for a date range, grouped by model or by API key, and this
month's spend of the project and the key against their budgets."""

from datetime import date
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query

from parley.api.app import build_handler, make_app, principal, requires
from parley.domain.usage import UsageReport
from parley.services import limits, metering

app = make_app()


@app.get("/v1/usage")
@requires("usage:GetUsage")
def get_usage(
    start_date: Annotated[date | None, Query()] = None,
    end_date: Annotated[date | None, Query()] = None,
    group_by: Annotated[Literal["model", "key"], Query()] = "model",
) -> UsageReport:
    caller = principal(app)
    report = metering.usage_report(caller, start_date, end_date, group_by)
    return report.model_copy(update={"budgets": limits.budget_status(caller)})


lambda_handler = build_handler(app)
