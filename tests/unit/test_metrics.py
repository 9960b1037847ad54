"""Business metrics: shared-set metrics flush with the handler's; a metric with dimensions of its own
is one EMF record at once, with the service dimension too (what the dashboard's SEARCH expects)."""

from __future__ import annotations

import json

import pytest

from parley import metrics


def emf_records(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]


def test_a_metric_with_dimensions_is_written_at_once_with_the_service_and_its_dimensions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics.milliseconds("TimeToFirstToken", 120.0, provider="openai")
    (record,) = emf_records(capsys.readouterr().out)
    (directive,) = record["_aws"]["CloudWatchMetrics"]  # type: ignore[index]
    assert directive["Namespace"] == "Parley"
    assert set(directive["Dimensions"][0]) == {"service", "provider"}
    assert directive["Metrics"] == [{"Name": "TimeToFirstToken", "Unit": "Milliseconds"}]
    assert (record["service"], record["provider"], record["TimeToFirstToken"]) == ("parley", "openai", [120.0])


def test_a_metric_without_dimensions_joins_the_shared_set(capsys: pytest.CaptureFixture[str]) -> None:
    shared = metrics._metrics()
    shared.clear_metrics()
    metrics.count("WebhookDisabled")
    assert capsys.readouterr().out == ""
    assert shared.metric_set["WebhookDisabled"]["Value"] == [1.0]
    shared.clear_metrics()
