"""Rate limits and budgets, checked before a model call (seed 002: 429 when a limit is exceeded).

Rate limits are one-minute fixed windows (UTC minutes), per project and per key, on requests
and on tokens, like OpenAI's RPM and TPM. A request's tokens are counted when it is admitted,
as OpenAI counts them: the prompt's tokens (as Parley counts them for the context window, or
UTF-8 bytes / 4 for a completion's messages) plus its max_tokens. One conditional UpdateItem
takes the window (parley.storage.limits); nothing is counted for a refused request.

Budgets are monthly (UTC calendar month) spend limits per project, per key and per end user,
against the cost metering records for priced calls. The spend is read with one BatchGetItem
and kept for BUDGET_CACHE_SECONDS in the environment, so a busy function reads it a few times a
minute, not per request; a budget can therefore be overshot by what is spent within that time
(and by calls already in flight). Over a budget, model calls answer 429 `budget_exceeded`
until the month ends or the budget is raised; routes that call no model are not affected.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from parley.domain.errors import RateLimited
from parley.domain.keys import Quota
from parley.domain.principal import Principal
from parley.domain.usage import BudgetStatus, Spend
from parley.metrics import count
from parley.storage.limits import LimitsRepository, Take

WINDOW = timedelta(minutes=1)
BUDGET_CACHE_SECONDS = 5.0
NANOS = Decimal(1_000_000_000)


def now() -> datetime:
    return datetime.now(UTC)


def monotonic() -> float:
    return time.monotonic()


@dataclass
class Deps:
    repository: LimitsRepository = field(default_factory=LimitsRepository)
    # looked up at each call (not bound once), so tests can move the module's clocks
    clock: Callable[[], datetime] = field(default=lambda: now())  # noqa: PLW0108
    monotonic: Callable[[], float] = field(default=lambda: monotonic())  # noqa: PLW0108


def estimate(texts: list[str], max_tokens: int | None) -> int:
    """Tokens a completion is counted for at admission: UTF-8 bytes / 4 of its text, plus max_tokens."""
    return math.ceil(sum(len(t.encode()) for t in texts) / 4) + (max_tokens or 0)


def admit(principal: Principal, tokens: int, user: str | None = None, deps: Deps | None = None) -> Quota | None:
    """Refuse a model call over a budget or a rate limit (429 with Retry-After and OpenAI's
    x-ratelimit-* headers); else count it in its window and say what is left (None: no limits)."""
    deps = deps or Deps()
    now = deps.clock()
    _check_budgets(principal, user, now, deps)
    return _take(principal, max(tokens, 0), now, deps)


def check_budgets(principal: Principal, user: str | None = None, deps: Deps | None = None) -> None:
    """Refuse (429 budget_exceeded) what would call a model over a budget, before anything is
    stored; counts nothing (the model call's own admission counts its rate limits)."""
    deps = deps or Deps()
    _check_budgets(principal, user, deps.clock(), deps)


# --- rate limits ---------------------------------------------------------------------------


def _take(principal: Principal, tokens: int, now: datetime, deps: Deps) -> Quota | None:
    project, key = principal.project_limits, principal.key_limits
    kinds = (("req", 1, "requests_per_minute"), ("tok", tokens, "tokens_per_minute"))
    takes: list[Take] = []
    for counter, amount, name in kinds:
        project_limit = getattr(project, name) if project is not None else None
        key_limit = getattr(key, name) if key is not None else None
        if project_limit is not None:
            takes.append(Take(counter, amount, project_limit))
        if key_limit is not None:
            takes.append(Take(f"k.{principal.key_id}.{counter}", amount, key_limit))
    if not takes:
        return None
    start = now.replace(second=0, microsecond=0)
    reset = (start + WINDOW - now).total_seconds()
    too_large = [t for t in takes if t.limit is not None and t.amount > t.limit]
    if too_large:
        worst = too_large[0]
        count("RateLimited")
        raise RateLimited(
            f"This request needs {worst.amount} tokens; the limit is {worst.limit} tokens per minute, "
            "so it can never be admitted. Send less, or lower max_tokens.",
            retry_after=math.ceil(reset),
            code="rate_limit_exceeded",
        )
    expires_at = int((start + 10 * WINDOW).timestamp())
    taken = deps.repository.take(principal.project_id, start.strftime("%Y-%m-%dT%H:%M"), takes, expires_at)
    quota = _quota(takes, taken.counts, reset)
    if not taken.admitted:
        count("RateLimited")
        refused = [t for t in takes if t.limit is not None and taken.counts.get(t.counter, 0) + t.amount > t.limit]
        which = "tokens" if refused and refused[0].counter.endswith("tok") else "requests"
        scope = "this API key" if refused and refused[0].counter.startswith("k.") else "the project"
        raise RateLimited(
            f"Rate limit reached for {which} per minute ({scope}); retry after {math.ceil(reset)} s.",
            retry_after=math.ceil(reset),
            code="rate_limit_exceeded",
            quota=quota,
        )
    return quota


def _quota(takes: list[Take], counts: dict[str, int], reset: float) -> Quota:
    """The tighter of project and key per kind: its limit and what is left of it (after this
    request when it was admitted; as it stands when it was refused)."""
    tightest: dict[str, tuple[int, int]] = {}
    for take in takes:
        assert take.limit is not None
        left = take.limit - counts.get(take.counter, 0)
        kind = take.counter.rsplit(".", 1)[-1]
        if kind not in tightest or left < tightest[kind][1]:
            tightest[kind] = (take.limit, max(0, left))
    requests, tokens = tightest.get("req"), tightest.get("tok")
    return Quota(
        requests_limit=requests[0] if requests else None,
        requests_remaining=requests[1] if requests else None,
        tokens_limit=tokens[0] if tokens else None,
        tokens_remaining=tokens[1] if tokens else None,
        reset_seconds=reset,
    )


# --- budgets -------------------------------------------------------------------------------

_spend_cache: dict[tuple[str, str, tuple[str, ...]], tuple[float, dict[str, int]]] = {}
_spend_lock = threading.Lock()


def clear_cache() -> None:
    with _spend_lock:
        _spend_cache.clear()


def _budgets(principal: Principal, user: str | None) -> list[tuple[str, Decimal, str]]:
    """(spend scope, budget in USD, what it is) for each budget that applies to this call."""
    found: list[tuple[str, Decimal, str]] = []
    project, key = principal.project_limits, principal.key_limits
    if project is not None and project.monthly_budget_usd is not None:
        found.append(("project", Decimal(str(project.monthly_budget_usd)), "the project's monthly budget"))
    if key is not None and key.monthly_budget_usd is not None:
        found.append((f"key#{principal.key_id}", Decimal(str(key.monthly_budget_usd)), "this API key's monthly budget"))
    if user and project is not None and project.user_monthly_budget_usd is not None:
        found.append((f"user#{user}", Decimal(str(project.user_monthly_budget_usd)), "this end user's monthly budget"))
    return found


def _check_budgets(principal: Principal, user: str | None, now: datetime, deps: Deps) -> None:
    budgets = _budgets(principal, user)
    if not budgets:
        return
    month = now.strftime("%Y-%m")
    scopes = tuple(scope for scope, _, _ in budgets)
    cache_key = (principal.project_id, month, scopes)
    with _spend_lock:
        cached = _spend_cache.get(cache_key)
    if cached is None or deps.monotonic() - cached[0] > BUDGET_CACHE_SECONDS:
        spend = deps.repository.spend(principal.project_id, month, list(scopes))
        with _spend_lock:
            _spend_cache[cache_key] = (deps.monotonic(), spend)
    else:
        spend = cached[1]
    for scope, budget, what in budgets:
        spent = Decimal(spend.get(scope, 0)) / NANOS
        if spent >= budget:
            count("BudgetExceeded")
            next_month = (now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)).replace(
                day=1
            )
            raise RateLimited(
                f"{what[0].upper()}{what[1:]} of ${budget} is spent (${spent.quantize(Decimal('0.000001'))} "
                f"this month); model calls resume next month or when the budget is raised.",
                retry_after=math.ceil((next_month - now).total_seconds()),
                code="budget_exceeded",
            )


def budget_status(principal: Principal, deps: Deps | None = None) -> BudgetStatus:
    """This month's spend of the caller's project and key against their budgets (fresh, not cached)."""
    deps = deps or Deps()
    month = deps.clock().strftime("%Y-%m")
    scopes = {"project": "project", "key": f"key#{principal.key_id}"}
    spent = deps.repository.spend(principal.project_id, month, list(scopes.values()))
    project, key = principal.project_limits, principal.key_limits

    def usd(scope: str) -> float:
        return float(Decimal(spent.get(scope, 0)) / NANOS)

    return BudgetStatus(
        month=month,
        project=Spend(spent_usd=usd("project"), budget_usd=project.monthly_budget_usd if project is not None else None),
        key=Spend(spent_usd=usd(scopes["key"]), budget_usd=key.monthly_budget_usd if key is not None else None),
        user_budget_usd=project.user_monthly_budget_usd if project is not None else None,
    )
