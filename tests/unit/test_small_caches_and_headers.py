"""The provider call cache (TTL, forget, negative entries only when asked) and OpenAI's rate-limit headers."""

from __future__ import annotations

import pytest

from parley.api.ratelimits import duration, headers
from parley.domain.keys import Quota
from parley.services.providers import CallCache


def test_the_call_cache_keeps_found_values_for_its_ttl_only() -> None:
    now = [0.0]
    cache = CallCache(seconds=30, clock=lambda: now[0])
    loads: list[str] = []

    def load() -> str:
        loads.append("x")
        return f"v{len(loads)}"

    assert cache.get(("record", "proj_a", "aip_1"), load) == "v1"
    now[0] = 29.9
    assert cache.get(("record", "proj_a", "aip_1"), load) == "v1"
    now[0] = 30.0
    assert cache.get(("record", "proj_a", "aip_1"), load) == "v2"
    assert len(loads) == 2


def test_missing_values_are_not_cached_and_forget_drops_one_projects_entries() -> None:
    cache = CallCache(seconds=30, clock=lambda: 0.0)
    missing: list[int] = []
    assert cache.get(("record", "proj_a", "aip_x"), lambda: missing.append(1)) is None
    assert cache.get(("record", "proj_a", "aip_x"), lambda: missing.append(1)) is None
    assert len(missing) == 2
    cache.get(("record", "proj_a", "aip_1"), lambda: "a")
    cache.get(("record", "proj_b", "aip_1"), lambda: "b")
    cache.forget("proj_a")
    assert cache.get(("record", "proj_a", "aip_1"), lambda: "a2") == "a2"
    assert cache.get(("record", "proj_b", "aip_1"), lambda: "b2") == "b"


def test_a_miss_asked_to_be_kept_is_kept_for_the_ttl_and_forgotten_on_a_write() -> None:
    now = [0.0]
    cache = CallCache(seconds=30, clock=lambda: now[0])
    loads: list[int] = []

    def nothing() -> str | None:
        loads.append(1)
        return None

    assert cache.get(("default", "proj_a"), nothing, keep_miss=True) is None
    now[0] = 29.9
    assert cache.get(("default", "proj_a"), nothing, keep_miss=True) is None
    assert len(loads) == 1  # the miss was kept: no second read
    now[0] = 30.0
    assert cache.get(("default", "proj_a"), nothing, keep_miss=True) is None
    assert len(loads) == 2  # expired: read again
    cache.forget("proj_a")  # a provider write in this environment
    assert cache.get(("default", "proj_a"), lambda: "aip_1", keep_miss=True) == "aip_1"


def test_a_zero_ttl_turns_the_cache_off() -> None:
    cache = CallCache(seconds=0, clock=lambda: 0.0)
    values = iter(["a", "b"])
    assert cache.get(("k", "p"), lambda: next(values)) == "a"
    assert cache.get(("k", "p"), lambda: next(values)) == "b"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.02, "20ms"), (1, "1s"), (59.5, "59.5s"), (60, "1m0s"), (360, "6m0s"), (-3, "0ms")]
)
def test_reset_durations_are_in_openais_form(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_headers_name_only_the_kinds_that_are_limited() -> None:
    quota = Quota(requests_limit=5, requests_remaining=-1, reset_seconds=12)
    assert headers(quota) == {
        "x-ratelimit-limit-requests": "5",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "12s",
    }
    assert headers(None) == {}
