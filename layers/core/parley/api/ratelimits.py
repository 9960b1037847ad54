"""OpenAI's rate-limit headers, from where a request left its limits (parley.domain.keys.Quota).

x-ratelimit-limit-requests / -remaining-requests / -reset-requests, and the same for -tokens;
reset times in OpenAI's duration form (`1s`, `6m0s`, `59.5s`).
"""

from __future__ import annotations

from parley.domain.keys import Quota


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{rest_text}" if minutes else rest_text


def headers(quota: Quota | None) -> dict[str, str]:
    if quota is None:
        return {}
    out: dict[str, str] = {}
    for kind, limit, remaining in (
        ("requests", quota.requests_limit, quota.requests_remaining),
        ("tokens", quota.tokens_limit, quota.tokens_remaining),
    ):
        if limit is not None and remaining is not None:
            out[f"x-ratelimit-limit-{kind}"] = str(limit)
            out[f"x-ratelimit-remaining-{kind}"] = str(max(0, remaining))
            out[f"x-ratelimit-reset-{kind}"] = duration(quota.reset_seconds)
    return out
