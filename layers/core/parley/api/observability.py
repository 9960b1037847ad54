"""Logger and metrics: built on first use (never at import), the same for every function.

Tracing is Lambda's active tracing (X-Ray segments per invocation, set in CDK), without the
X-Ray SDK in the function: Powertools' Tracer imports aws_xray_sdk, which alone adds ~320 ms
to every cold start (bench/cold_start.py), and that SDK is in maintenance mode.
"""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools import Logger, Metrics

from parley.settings import get_settings


@cache
def logger() -> Logger:
    return Logger(service=get_settings().service_name)


@cache
def metrics() -> Metrics:
    return Metrics(namespace="Parley", service=get_settings().service_name)
