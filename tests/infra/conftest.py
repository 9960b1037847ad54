"""Synthesizes the CDK app once per test session for each stage the tests read, and once across
xdist workers too.

`synth`: the prod stage from cdk.json, with alarm subscribers and an existing WAF web ACL given in
context (PROD_CONTEXT). `dev_synth`: the dev stage with the options a stage may turn on: a custom
domain in a hosted zone, a managed-rules web ACL and reserved concurrency (DEV_CONTEXT).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.infra.infra_synth import Synth, synthesize

ALARM_EMAIL = "oncall@example.com"
ALARM_URL = "https://alerts.example.com/parley"
WEB_ACL_ARN = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/parley-prod/0123abcd"
PROD_CONTEXT: dict[str, Any] = {
    "stage": "prod",
    "alarm_emails": ALARM_EMAIL,  # as the CLI gives it: a string
    "alarm_https_endpoints": [ALARM_URL],
    "waf_web_acl_arn": WEB_ACL_ARN,
}
DEV_CONTEXT: dict[str, Any] = {
    "stage": "dev",
    "domain_name": "api.dev.example.com",
    "hosted_zone_id": "Z0123456789ABCDEFGHIJ",
    "hosted_zone_name": "dev.example.com",
    "waf_managed_rules": True,
    "reserved_concurrency": {"streaming": 5, "consumers": 2},
}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _synth(tmp_path_factory: pytest.TempPathFactory, name: str, context: dict[str, Any]) -> Synth:
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return Synth.load(synthesize(tmp_path_factory.mktemp(name), context))
    # Under xdist the first worker synthesizes into the session's shared temporary directory and
    # the others wait for it, instead of each paying for a synth.
    shared = tmp_path_factory.getbasetemp().parent / f"parley-{name}"
    with _locked(tmp_path_factory.getbasetemp().parent / f"parley-{name}.lock"):
        done = shared / "done"
        if not done.exists():
            synthesize(shared, context)
            done.touch()
    return Synth.load(shared / "cdk.out")


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synth(tmp_path_factory, "infra", PROD_CONTEXT)


@pytest.fixture(scope="session")
def dev_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synth(tmp_path_factory, "infra-dev", DEV_CONTEXT)
