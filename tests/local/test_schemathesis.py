"""Schemathesis over every operation of the generated OpenAPI document, against the local server
(the echo model and moto: nothing leaves the machine).

Bounded and reproducible: a fixed seed, a case budget per operation (PARLEY_SCHEMATHESIS_EXAMPLES,
default 10; raise it for a soak run), one worker, no example database. The examples, coverage,
fuzzing and stateful phases run with the checks below; the stateful phase follows the document's
links (create -> read/update/delete, delete -> read). 0 failures is the bar. The figures
(operations, cases, failures) are printed in pytest's summary and kept as the test's properties.

Reproduce a run by hand against `make serve`:

    SCHEMATHESIS_HOOKS=tests.local.schemathesis_hooks .venv/bin/schemathesis \\
        --config-file tests/local/schemathesis.toml run http://127.0.0.1:8000/v1/openapi.json \\
        -H "Authorization: Bearer $PARLEY_KEY" --checks <CHECKS> --seed <SEED> --max-examples 10
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.local.conftest import ROOT, Server, start_server, stop_server

pytestmark = pytest.mark.local
HERE = Path(__file__).resolve().parent
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "ignored_auth",
    "use_after_free",
    "ensure_resource_availability",
)
SEED = 20261203
EXAMPLES = int(os.environ.get("PARLEY_SCHEMATHESIS_EXAMPLES", "10"))
TIMEOUT_SECONDS = 600


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Server]:
    """A server of its own: what schemathesis creates stays out of the other tests' server, and
    the echo model streams without the shared server's 200 ms pauses."""
    running = start_server()
    yield running
    stop_server(running)


def config(route_table: Any, document: dict[str, Any], path: Path) -> Path:
    """tests/local/schemathesis.toml, and for each route that shares its function and method with an
    earlier one (an alias, e.g. /v1/chats/completions of /v1/chat/completions) no coverage phase: it
    runs the same handler on the same schema, and the exhaustive phase would double the budget.
    Aliases are still tested by the examples, fuzzing and stateful phases."""
    seen: set[tuple[str, str]] = set()
    lines = [(HERE / "schemathesis.toml").read_text()]
    for route in route_table.routes:
        if (route.function, route.method) in seen:
            operation_id = document["paths"][route.path][route.method.lower()]["operationId"]
            lines += [
                "",
                "[[operations]]",
                f'include-operation-id = "{operation_id}"',
                "phases.coverage.enabled = false",
            ]
        seen.add((route.function, route.method))
    path.write_text("\n".join(lines) + "\n")
    return path


def own_key_id(server: Server) -> str:
    """The id of the key schemathesis authenticates with (the hooks keep it from being changed)."""
    headers = {"Authorization": f"Bearer {server.key}"}
    listed = httpx.get(f"{server.url}/v1/api-keys", params={"limit": 100}, headers=headers, timeout=30)
    assert listed.status_code == 200, listed.text
    found = [k["id"] for k in listed.json()["data"] if server.key.startswith(k["prefix"])]
    assert len(found) == 1, listed.text
    return str(found[0])


def run_schemathesis(server: Server, document: Path, settings: Path, report: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(settings),
        "--no-color",
        "run",
        str(document),  # from a file: schemathesis leaves out the operation at a schema URL it loads
        "--url",
        server.url,
        "--header",
        f"Authorization: Bearer {server.key}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--seed",
        str(SEED),
        "--max-examples",
        str(EXAMPLES),
        "--generation-database",
        "none",
        "--workers",
        "1",  # hypothesis' lambda descriptions are not thread-safe on CPython 3.11
        "--request-timeout",
        "30",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.local.schemathesis_hooks",
        "PARLEY_SCHEMATHESIS_KEY_ID": own_key_id(server),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "NO_COLOR": "1",
    }
    # in a temporary directory: schemathesis keeps a cache of what it found under ./.schemathesis
    return subprocess.run(
        command,
        cwd=report.parent,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def figures(report: dict[str, Any]) -> str:
    operations, cases = report["operations"], report["test_cases"]
    failures = sum(f.get("count", 0) for f in report["failures"])
    phases = ", ".join(f"{name} {phase['status']}" for name, phase in report["phases"].items())
    return (
        f"schemathesis: {operations['tested']}/{operations['total']} operations, {cases['generated']} cases, "
        f"{failures} failures, {len(report['errors'])} errors (seed {SEED}, {EXAMPLES} examples per operation; "
        f"{phases}; {report['running_time']:.0f} s)"
    )


def test_schemathesis_finds_no_failure_in_any_operation(
    fuzzed: Server, tmp_path: Path, record_property: Any, route_table: Any
) -> None:
    served = httpx.get(f"{fuzzed.url}/v1/openapi.json", timeout=30)
    assert served.status_code == 200, served.text
    document = tmp_path / "openapi.json"
    document.write_bytes(served.content)
    settings = config(route_table, served.json(), tmp_path / "schemathesis.toml")
    report_path = tmp_path / "schemathesis.json"
    result = run_schemathesis(fuzzed, document, settings, report_path)
    assert report_path.is_file(), f"schemathesis wrote no report:\n{result.stdout[-5000:]}\n{result.stderr[-3000:]}"
    report = json.loads(report_path.read_text())
    summary = figures(report)
    record_property("schemathesis", summary)
    print(summary)
    output = result.stdout[-20000:] + result.stderr[-3000:]
    assert report["operations"]["tested"] == report["operations"]["total"] == len(route_table.routes), output
    assert not report["failures"], f"{summary}\n{output}"
    assert not report["errors"], f"{summary}\n{output}"
    assert report["phases"]["stateful"]["status"] == "success", f"{summary}\n{output}"
    assert result.returncode == 0, f"{summary}\n{output}"
