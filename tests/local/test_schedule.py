"""The local server runs the route table's scheduled functions (the sweep) on their interval,
so a usage record parked under `make serve` is folded in as it would be on AWS."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import pytest

from parley.api.routing import Scheduled
from parley.runtime.schedule import Schedule
from tests.local.conftest import KEY, start_server, stop_server


def test_each_job_runs_on_its_interval_and_a_failure_is_reported_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[tuple[str, str]] = []
    failing = threading.Event()
    failing.set()

    def invoke(function: str, event: dict[str, Any], timeout: float) -> Any:
        calls.append((function, event["detail-type"]))
        if function == "flaky" and failing.is_set():
            failing.clear()
            raise RuntimeError("first run fails")
        return {"ok": True}

    schedule = Schedule(
        (Scheduled("steady", every_minutes=1), Scheduled("flaky", every_minutes=2)), invoke, seconds_per_minute=0.02
    )
    with caplog.at_level(logging.INFO, logger="parley.local.schedule"):
        schedule.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and schedule.runs.get("flaky", 0) < 1:
            time.sleep(0.01)
        schedule.stop()
    assert schedule.failures == {"flaky": 1}
    assert schedule.runs["flaky"] >= 1  # the run after the failure went through
    assert schedule.runs["steady"] > schedule.runs["flaky"]  # twice as often
    assert {detail for _, detail in calls} == {"Scheduled Event"}
    assert any(r.levelname == "ERROR" and "flaky failed: RuntimeError" in r.getMessage() for r in caplog.records)


def test_a_record_parked_under_make_serve_is_folded_by_the_local_sweep() -> None:
    server = start_server("--schedule-minute", "0.05")  # the 5-minute sweep every 0.25 s
    try:
        endpoint = re.search(r"moto on (http://127\.0\.0\.1:\d+)", "".join(server.output))
        assert endpoint is not None
        sqs = boto3.client(
            "sqs",
            endpoint_url=endpoint.group(1),
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        queue = sqs.get_queue_url(QueueName="parley-metering")["QueueUrl"]
        now = datetime.now(UTC)
        audit = {"id": "evt_parkedlocally", "object": "audit_event", "time": now.isoformat(), "route": "test"}
        record = {
            "id": audit["id"],
            "project_id": "proj_local",
            "counters": {"requests": 1, "prompt_tokens": 7},
            "labels": {"model": "parked-model", "key_id": "key_parked", "day": now.date().isoformat()},
            "audit": audit,
        }
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(record))
        headers = {"Authorization": f"Bearer {KEY}"}
        deadline = time.monotonic() + 30
        counted: dict[str, Any] = {}
        while time.monotonic() < deadline:
            usage = httpx.get(f"{server.url}/v1/usage", params={"group_by": "model"}, headers=headers).json()
            counted = {row["model"]: row for row in usage["data"]}
            if "parked-model" in counted:
                break
            time.sleep(0.2)
        assert counted["parked-model"]["requests"] == 1
        assert counted["parked-model"]["prompt_tokens"] == 7
        server.wait_for_line("scheduled sweep: {'folded': 1")
    finally:
        stop_server(server)
