"""Business metrics (CloudWatch EMF through Powertools), for any layer.

Powertools' Metrics instances share one metric set per process, so a metric added here is
flushed with the handler's (parley.api.app flushes after each invocation and stream). A metric
with dimensions of its own (`provider=...`) is written at once as a single EMF record, since the
shared set has one set of dimensions for all its metrics. Keep dimensions low-cardinality (a
provider type, never a project, key or model id): each combination is a metric CloudWatch bills.

The infra's dashboard and alarms (infra.stacks.observability) read these names.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from parley.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

NAMESPACE = "Parley"


@cache
def _metrics() -> Metrics:
    from aws_lambda_powertools import Metrics  # noqa: PLC0415 - on first use, not at import

    return Metrics(namespace=NAMESPACE, service=get_settings().service_name)


def count(name: str, value: int = 1, **dimensions: str) -> None:
    _add(name, "Count", value, dimensions)


def milliseconds(name: str, value: float, **dimensions: str) -> None:
    _add(name, "Milliseconds", value, dimensions)


def _add(name: str, unit_name: str, value: float, dimensions: dict[str, str]) -> None:
    from aws_lambda_powertools.metrics import MetricUnit, single_metric  # noqa: PLC0415

    unit = MetricUnit[unit_name]
    if not dimensions:
        _metrics().add_metric(name=name, unit=unit, value=value)
        return
    with single_metric(
        name=name,
        unit=unit,
        value=value,
        namespace=NAMESPACE,
        default_dimensions={"service": get_settings().service_name, **dimensions},
    ):
        pass
