"""Business metrics (CloudWatch EMF through Powertools), for any layer.

Powertools' Metrics instances share one metric set per process, so a metric added here is
flushed with the handler's (parley.api.app flushes after each invocation and stream).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from parley.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics


@cache
def _metrics() -> Metrics:
    from aws_lambda_powertools import Metrics  # noqa: PLC0415 - on first use, not at import

    return Metrics(namespace="Parley", service=get_settings().service_name)


def count(name: str, value: int = 1) -> None:
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415

    _metrics().add_metric(name=name, unit=MetricUnit.Count, value=value)
