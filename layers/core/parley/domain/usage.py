"""What GET /v1/usage and GET /v1/audit-events return (parley.services.metering builds them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Outcome = Literal["succeeded", "failed", "incomplete"]


def _absent(value: object) -> bool:
    return value is None


class UsageSummary(BaseModel):
    requests: int
    failed_requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    cost_usd: float | None = Field(description="null when no request of the group had a known price")
    unpriced_requests: int


class UsageGroup(UsageSummary):
    """One group of the report: `model` with group_by=model, `key_id` with group_by=key."""

    model: str | None = Field(default=None, exclude_if=_absent)
    key_id: str | None = Field(default=None, exclude_if=_absent)


class Spend(BaseModel):
    spent_usd: float = Field(description="this month's priced spend so far (UTC calendar month)")
    budget_usd: float | None = Field(description="the monthly budget; null when none is set")


class BudgetStatus(BaseModel):
    """This month's spend of the caller's project and key against their budgets."""

    month: str = Field(description="YYYY-MM")
    project: Spend
    key: Spend
    user_budget_usd: float | None = Field(description="the project's budget per end user; null when none is set")


class UsageReport(BaseModel):
    object: Literal["usage"] = "usage"
    start_date: str = Field(description="YYYY-MM-DD")
    end_date: str = Field(description="YYYY-MM-DD")
    group_by: Literal["model", "key"]
    price_version: str
    data: list[UsageGroup]
    totals: UsageSummary
    budgets: BudgetStatus | None = Field(default=None, description="set by GET /v1/usage")


class AuditEvent(BaseModel):
    """One model call: who, which route, which resources, how it ended. Kept for the retention period."""

    id: str
    object: Literal["audit_event"] = "audit_event"
    time: str
    key_id: str | None = None
    route: str
    request_id: str | None = None
    resource_ids: list[str] = Field(default_factory=list)
    outcome: Outcome
    status: int
    latency_ms: int
    model: str
    provider_id: str | None = None
    error_code: str | None = None
    tries: int = 1
    total_tokens: int | None = None
