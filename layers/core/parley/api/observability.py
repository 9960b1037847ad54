"""Logger and metrics: built on first use (never at import), the same for every function; and
the one structured ERROR line every 500 logs (`log_internal_error`).

Tracing is Lambda's active tracing (X-Ray segments per invocation, set in CDK), without the
X-Ray SDK in the function: Powertools' Tracer imports aws_xray_sdk, which alone adds ~320 ms
to every cold start (bench/cold_start.py), and that SDK is in maintenance mode.
"""

from __future__ import annotations

import traceback
from functools import cache

from aws_lambda_powertools import Logger, Metrics

from parley.settings import get_settings


@cache
def logger() -> Logger:
    return Logger(service=get_settings().service_name)


@cache
def metrics() -> Metrics:
    return Metrics(namespace="Parley", service=get_settings().service_name)


def log_internal_error(error: BaseException, request_id: str | None, message: str = "internal error") -> None:
    """The one log line of a 500: ERROR, structured, no traceback (the exception type and the
    raising frame say where to look; the request id ties it to the client's report)."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else None
    logger().error(
        message,
        extra={
            "request_id": request_id,
            "exception_type": f"{type(error).__module__}.{type(error).__qualname__}",
            "exception_location": where,
        },
    )
