"""Issue 19's `make smoke` acceptance, in CI: the smoke suite (parley.cli.smoke, what `make smoke`
runs) against the local server, with a webhook receiver on 127.0.0.1. Every row passes, every
section ran, everything it created is gone afterwards, and its output never shows the API key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.handlers.webhook_receiver import Receiver
from tests.local.conftest import ROOT, Server

pytestmark = pytest.mark.local

SECTIONS = {"health", "completion", "conversation", "search", "chat", "document", "index", "webhook", "cleanup"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def test_the_smoke_suite_passes_against_the_local_server_and_leaves_nothing_behind(
    server: Server, receiver: Receiver
) -> None:
    env = {**os.environ, "API_URL": server.url, "API_KEY": server.key, "RECEIVER_URL": receiver.url}
    env.pop("PARLEY_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "parley.cli.smoke", "--json", "--poll-seconds", "40"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert server.key not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("parley-smoke: run ")
    run_id = lines[0].split()[2]
    rows = [json.loads(line) for line in lines[1:]]
    failed = [r for r in rows if r["status"] != "pass"]
    assert not failed, "\n".join(f"{r['section']}: {r['name']}: {r['status']}: {r['detail']}" for r in failed)
    assert done.returncode == 0, done.stderr
    assert {r["section"] for r in rows} == SECTIONS
    # the webhook was delivered twice: the synchronous test and the conversation's event via the pipeline
    assert {json.loads(r.body)["type"] for r in receiver.requests} >= {"webhook.test", "chat.conversation_created"}

    # cleanup: one row per created resource, and none of them is still there
    deleted = [r["name"] for r in rows if r["section"] == "cleanup"]
    kinds = sorted(name.split()[1] for name in deleted)
    assert kinds == sorted(["conversation", "conversation", "provider", "chat", "document", "index", "webhook"])
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=30)
    for name in deleted:
        kind, resource_id = name.split()[1:]
        route = {"index": "indexes"}.get(kind, kind + "s")
        assert http.get(f"/v1/{route}/{resource_id}").status_code == 404, name
    names = [p["name"] for p in http.get("/v1/providers", params={"limit": "100"}).json()["data"]]
    assert f"smoke-{run_id}" not in names
