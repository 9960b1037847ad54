"""Stages: what differs between a development stack (torn down at will, cheap) and production (keeps
its data, alarms an operator). One typed `Stage`, read once from CDK context by `Stage.from_context`.

Where a setting comes from, first match wins:

1. the flat context key (`cdk -c key=value`, or top-level in cdk.json's context): every stage;
2. `stages.<stage name>.<key>` in cdk.json's context: that stage only;
3. the stage's profile: `prod` for the stage named prod (or any stage with `production: true`),
   `dev` for every other stage.

Keys (the Stage field of the same name says what each does): production, removal_policy
(retain|destroy), deletion_protection, point_in_time_recovery, log_retention_days, throttle_rate,
throttle_burst, search_standby_replicas, search_retain, alarms, alarm_emails,
alarm_https_endpoints, ttft_p95_threshold_ms, api_5xx_rate_percent, reserved_concurrency,
domain_name, certificate_arn, hosted_zone_id, hosted_zone_name, waf_web_acl_arn, waf_managed_rules,
authorizer_cache_seconds, log_content.

The CLI passes `-c` values as strings, so booleans take true/false/1/0/yes/no/on/off, lists take
a JSON list or a comma-separated string, and reserved_concurrency a JSON object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs

PRODUCTION_STAGE = "prod"
STAGE_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")
# The groups reserved_concurrency may name (infra.constructs.functions.function_group).
FUNCTION_GROUPS = ("api", "streaming", "authorizer", "scheduled", "consumers")
MAX_AUTHORIZER_CACHE_SECONDS = 60  # revocation is promised within 60 s (parley.api.routing)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
T = TypeVar("T")
# The retention periods CloudWatch Logs offers, in days.
RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


@dataclass(frozen=True)
class Stage:
    name: str
    production: bool
    removal_policy: RemovalPolicy  # of the data (tables, bucket, search collection, log groups)
    deletion_protection: bool  # on the data tables
    point_in_time_recovery: bool  # on every table
    log_retention_days: int  # function and API access logs
    throttle_rate: float  # the API stage's requests per second
    throttle_burst: int
    search_standby_replicas: bool
    search_retain: bool  # keep the collection (with deletion protection) when the stack goes
    alarms: bool  # the alarms and their SNS topic exist
    alarm_emails: tuple[str, ...] = ()
    alarm_https_endpoints: tuple[str, ...] = ()
    ttft_p95_threshold_ms: int = 5000
    api_5xx_rate_percent: float = 1.0
    reserved_concurrency: Mapping[str, int] = field(default_factory=dict)  # function group -> executions
    domain_name: str | None = None
    certificate_arn: str | None = None  # else a DNS-validated certificate in the hosted zone
    hosted_zone_id: str | None = None
    hosted_zone_name: str | None = None
    waf_web_acl_arn: str | None = None  # an existing regional web ACL to associate
    waf_managed_rules: bool = False  # create a web ACL of AWS managed rules and associate it
    authorizer_cache_seconds: int | None = None  # None: the route table's
    log_content: bool = False  # PARLEY_LOG_CONTENT: request bodies in the logs (debugging only)

    @property
    def retain(self) -> bool:
        return self.removal_policy == RemovalPolicy.RETAIN

    @property
    def log_retention(self) -> logs.RetentionDays:
        return RETENTION[self.log_retention_days]

    @classmethod
    def from_context(cls, get: Callable[[str], Any], default_name: str = PRODUCTION_STAGE) -> Stage:
        """The stage from a context getter (`app.node.try_get_context`)."""
        name = str(get("stage") or default_name)
        if not STAGE_NAME.fullmatch(name):
            raise ValueError(f"stage {name!r}: lower-case letters, digits and '-', starting with a letter")
        per_stage = get("stages") or {}
        if isinstance(per_stage, str):
            per_stage = json.loads(per_stage)
        own = per_stage.get(name) or {}
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = sorted(set(own) - known)
        if unknown:
            raise ValueError(f"stages.{name}: unknown keys {unknown}; known: {sorted(known)}")

        def value(key: str) -> Any:
            flat = get(key)
            return flat if flat is not None else own.get(key)

        production = flag(value("production"), name == PRODUCTION_STAGE, "production")
        profile = PROD_PROFILE if production else DEV_PROFILE

        def pick(key: str, parse: Callable[[Any, str], T]) -> T:
            raw = value(key)
            return parse(raw, key) if raw is not None else profile[key]

        removal = pick("removal_policy", _removal)
        stage = cls(
            name=name,
            production=production,
            removal_policy=removal,
            deletion_protection=pick("deletion_protection", flag_of),
            point_in_time_recovery=pick("point_in_time_recovery", flag_of),
            log_retention_days=pick("log_retention_days", _retention),
            throttle_rate=pick("throttle_rate", _positive_float),
            throttle_burst=pick("throttle_burst", _positive_int),
            search_standby_replicas=pick("search_standby_replicas", flag_of),
            search_retain=pick("search_retain", flag_of),
            alarms=pick("alarms", flag_of),
            alarm_emails=pick("alarm_emails", _emails),
            alarm_https_endpoints=pick("alarm_https_endpoints", _https),
            ttft_p95_threshold_ms=pick("ttft_p95_threshold_ms", _positive_int),
            api_5xx_rate_percent=pick("api_5xx_rate_percent", _positive_float),
            reserved_concurrency=pick("reserved_concurrency", _concurrency),
            domain_name=pick("domain_name", _domain),
            certificate_arn=pick("certificate_arn", _text),
            hosted_zone_id=pick("hosted_zone_id", _text),
            hosted_zone_name=pick("hosted_zone_name", _domain),
            waf_web_acl_arn=pick("waf_web_acl_arn", _text),
            waf_managed_rules=pick("waf_managed_rules", flag_of),
            authorizer_cache_seconds=pick("authorizer_cache_seconds", _cache_seconds),
            log_content=pick("log_content", flag_of),
        )
        stage.check()
        return stage

    def check(self) -> None:
        if self.domain_name and not (self.certificate_arn or self.hosted_zone_id):
            raise ValueError("domain_name needs certificate_arn, or hosted_zone_id (a DNS-validated certificate)")
        if (self.certificate_arn or self.hosted_zone_id) and not self.domain_name:
            raise ValueError("certificate_arn and hosted_zone_id are for a custom domain: set domain_name too")
        if bool(self.hosted_zone_id) != bool(self.hosted_zone_name):
            raise ValueError("hosted_zone_id and hosted_zone_name go together")
        if self.waf_web_acl_arn and self.waf_managed_rules:
            raise ValueError("waf_web_acl_arn or waf_managed_rules, not both: a stage has one web ACL")
        if (self.alarm_emails or self.alarm_https_endpoints) and not self.alarms:
            raise ValueError("alarm subscribers are set but alarms are off for this stage (alarms=false)")


DEV_PROFILE: dict[str, Any] = {
    "removal_policy": RemovalPolicy.DESTROY,
    "deletion_protection": False,
    "point_in_time_recovery": False,
    "log_retention_days": 7,
    "throttle_rate": 10.0,
    "throttle_burst": 20,
    "search_standby_replicas": False,
    "search_retain": False,
    "alarms": False,
    "alarm_emails": (),
    "alarm_https_endpoints": (),
    "ttft_p95_threshold_ms": 5000,
    "api_5xx_rate_percent": 1.0,
    "reserved_concurrency": {},
    "domain_name": None,
    "certificate_arn": None,
    "hosted_zone_id": None,
    "hosted_zone_name": None,
    "waf_web_acl_arn": None,
    "waf_managed_rules": False,
    "authorizer_cache_seconds": None,
    "log_content": False,
}
PROD_PROFILE: dict[str, Any] = DEV_PROFILE | {
    "removal_policy": RemovalPolicy.RETAIN,
    "deletion_protection": True,
    "point_in_time_recovery": True,
    "log_retention_days": 90,
    "throttle_rate": 100.0,
    "throttle_burst": 200,
    "search_standby_replicas": True,
    "search_retain": True,
    "alarms": True,
}


# --- parsing context values (the CLI gives strings) --------------------------------------------


def flag(value: object, default: bool, key: str = "value") -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "on"}:
        return True
    if text in {"false", "0", "no", "off"}:
        return False
    raise ValueError(f"{key}: expected a boolean, got {value!r}")


def flag_of(value: object, key: str) -> bool:
    return flag(value, False, key)


def _removal(value: object, key: str) -> RemovalPolicy:
    text = str(value).strip().lower()
    if text not in {"retain", "destroy"}:
        raise ValueError(f"{key}: retain or destroy, got {value!r}")
    return RemovalPolicy.RETAIN if text == "retain" else RemovalPolicy.DESTROY


def _positive_int(value: object, key: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ValueError(f"{key}: expected an integer, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{key}: must be >= 1, got {number}")
    return number


def _positive_float(value: object, key: str) -> float:
    try:
        number = float(str(value))
    except ValueError:
        raise ValueError(f"{key}: expected a number, got {value!r}") from None
    if not number > 0:
        raise ValueError(f"{key}: must be > 0, got {number}")
    return number


def _retention(value: object, key: str) -> int:
    days = _positive_int(value, key)
    if days not in RETENTION:
        raise ValueError(f"{key}: CloudWatch Logs keeps logs for one of {sorted(RETENTION)} days, got {days}")
    return days


def _cache_seconds(value: object, key: str) -> int:
    try:
        seconds = int(str(value))
    except ValueError:
        raise ValueError(f"{key}: expected an integer, got {value!r}") from None
    if not 0 <= seconds <= MAX_AUTHORIZER_CACHE_SECONDS:
        raise ValueError(f"{key}: 0..{MAX_AUTHORIZER_CACHE_SECONDS} s (revocation is promised within 60 s)")
    return seconds


def _text(value: object, key: str) -> str | None:
    text = str(value).strip()
    return text or None


def _domain(value: object, key: str) -> str | None:
    text = str(value).strip().lower().rstrip(".")
    if not text:
        return None
    if not _DOMAIN.fullmatch(text):
        raise ValueError(f"{key}: not a domain name: {value!r}")
    return text


def _list(value: object, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        text = value.strip()
        items: list[Any] = json.loads(text) if text.startswith("[") else text.split(",")
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValueError(f"{key}: expected a list or a comma-separated string, got {value!r}")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _emails(value: object, key: str) -> tuple[str, ...]:
    emails = _list(value, key)
    bad = [e for e in emails if not _EMAIL.fullmatch(e)]
    if bad:
        raise ValueError(f"{key}: not email addresses: {bad}")
    return emails


def _https(value: object, key: str) -> tuple[str, ...]:
    urls = _list(value, key)
    bad = [u for u in urls if not u.startswith("https://") or " " in u]
    if bad:
        raise ValueError(f"{key}: SNS https subscriptions need https:// URLs: {bad}")
    return urls


def _concurrency(value: object, key: str) -> dict[str, int]:
    raw = json.loads(value) if isinstance(value, str) else value
    if not isinstance(raw, Mapping):
        raise ValueError(f"{key}: expected an object of function group -> executions, got {value!r}")
    unknown = sorted(set(raw) - set(FUNCTION_GROUPS))
    if unknown:
        raise ValueError(f"{key}: unknown function groups {unknown}; the groups are {list(FUNCTION_GROUPS)}")
    return {str(group): _positive_int(n, f"{key}.{group}") for group, n in raw.items()}
