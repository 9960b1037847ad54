"""The local server's EventBridge schedule: every scheduled function of the route table
(`RouteTable.scheduled`, e.g. the sweep) runs on its interval, in the same execution
environments as the routes, with the event EventBridge Scheduler would send.

A run that fails is reported at ERROR with the function's error and counted; the next run
retries it, as on AWS (where the failed invocation shows in the function's Errors metric)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from parley.api.routing import Scheduled

log = logging.getLogger("parley.local.schedule")
Invoke = Callable[[str, dict[str, Any], float], Any]


def scheduled_event(job: Scheduled, now: datetime) -> dict[str, Any]:
    """The event an EventBridge scheduled rule delivers."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:000000000000:rule/parley-{job.function}"],
        "detail": {},
    }


@dataclass
class Schedule:
    jobs: tuple[Scheduled, ...]
    invoke: Invoke
    seconds_per_minute: float = 60.0  # tests shrink time; the server keeps real minutes
    runs: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        if self.jobs:
            self._thread = threading.Thread(target=self._loop, name="parley-schedule", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        due = {job.function: time.monotonic() + job.every_minutes * self.seconds_per_minute for job in self.jobs}
        while not self._stop.is_set():
            now = time.monotonic()
            for job in self.jobs:
                if now >= due[job.function]:
                    self.run(job)
                    due[job.function] = time.monotonic() + job.every_minutes * self.seconds_per_minute
            self._stop.wait(min(max(0.05, min(due.values()) - time.monotonic()), 1.0))

    def run(self, job: Scheduled) -> None:
        try:
            invocation = self.invoke(job.function, scheduled_event(job, datetime.now(UTC)), float(job.timeout_seconds))
        except Exception as exc:  # noqa: BLE001 - reported and counted; the next run retries it
            self.failures[job.function] = self.failures.get(job.function, 0) + 1
            log.error("scheduled function %s failed: %s: %s", job.function, type(exc).__name__, exc)
            return
        self.runs[job.function] = self.runs.get(job.function, 0) + 1
        log.info("scheduled %s: %s", job.function, getattr(invocation, "result", invocation))
