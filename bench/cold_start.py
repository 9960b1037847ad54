"""Cold start per handler: import time and first invocation, next to a bare baseline.

Each measurement runs in a fresh Python process (as a new Lambda environment would): it times
the import of functions/<name>/handler.py, then the first invocation with the route's sample
event (events/api/), then a warm one. The baseline is a bare Powertools REST resolver that
builds a boto3 DynamoDB client on its first call, measured the same way in the same run.

    make bench            # or: .venv/bin/python bench/cold_start.py [--runs 5]

AWS calls go to moto, started after the import is timed (moto is not in Lambda). Numbers are
this machine's; only their relation to the baseline carries over to Lambda.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BASELINE = """
import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

app = APIGatewayRestResolver()
_client = None

@app.get("/v1/health")
def health():
    global _client
    _client = _client or boto3.client("dynamodb")
    return {"status": "ok"}

def lambda_handler(event, context):
    return app.resolve(event, context)
"""


def child(handler_path: str, event_path: str) -> None:
    """Runs in the fresh process: import, first call, warm call; prints JSON."""
    from parley.runtime.local import LOCAL_ENV  # noqa: PLC0415 - tiny module, imported before the clock starts

    for name, value in LOCAL_ENV.items():
        os.environ.setdefault(name, value)
    import importlib.util  # noqa: PLC0415

    started = time.perf_counter()
    spec = importlib.util.spec_from_file_location("bench_handler", handler_path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    imported = time.perf_counter()
    # moto (below, not timed) imports boto3; a handler that loads boto3 on first use would then get it
    # for free. So the boto3 load is timed here, and counted with the first call: it costs what it
    # costs in Lambda (nothing, if the handler already loaded it at import).
    boto3_started = time.perf_counter()
    import boto3  # noqa: PLC0415, F401
    from boto3.dynamodb.types import TypeSerializer  # noqa: PLC0415, F401
    from botocore.config import Config  # noqa: PLC0415, F401

    boto3_load = time.perf_counter() - boto3_started

    from moto import mock_aws  # noqa: PLC0415 - not timed

    from parley.aws import clients  # noqa: PLC0415
    from parley.services.keys import issue_key  # noqa: PLC0415
    from parley.storage.schema import create_tables  # noqa: PLC0415

    event = json.loads(Path(event_path).read_text())

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "bench", 512, "bench"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 30_000

    with mock_aws():
        create_tables(clients().dynamodb)
        if event.get("type") == "REQUEST":
            secret = issue_key("org", "proj").secret
            event["headers"] = {"Authorization": f"Bearer {secret}"}
        timings = []
        for _ in range(2):
            began = time.perf_counter()
            result = module.lambda_handler(event, Context())
            body = getattr(result, "body", None)
            if body is not None:
                for _chunk in body:
                    pass
            timings.append(time.perf_counter() - began)
    print(json.dumps({"import": imported - started, "first": boto3_load + timings[0], "warm": timings[1]}))


def measure(handler_path: Path, event_path: Path, runs: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {"import": [], "first": [], "warm": []}
    for _ in range(runs):
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(handler_path), str(event_path)],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        if child.returncode != 0:
            print(f"{handler_path.parent.name}: failed\n{child.stderr[-2000:]}", file=sys.stderr)
            return {}
        out = child.stdout
        result = json.loads(out.strip().splitlines()[-1])
        for key, values in samples.items():
            values.append(result[key] * 1000)
    return {key: statistics.median(values) for key, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from parley.api.routing import load_route_table  # noqa: PLC0415
    from parley.runtime.events import authorizer_event  # noqa: PLC0415

    table = load_route_table(ROOT / "functions" / "routes.py")
    work = ROOT / "build" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    baseline = work / "baseline_handler.py"
    baseline.write_text(BASELINE)
    authorizer_sample = work / "authorizer_event.json"
    authorizer_sample.write_text(json.dumps(authorizer_event("GET", "/v1/health", "/v1/health")))

    rows = [("baseline: bare resolver + boto3", measure(baseline, ROOT / "events/api/health_get.json", args.runs))]
    for function in table.functions():
        rows.append((function, measure(table.handler_path(function), ROOT / f"events/api/{function}.json", args.runs)))
    rows.append((table.authorizer, measure(table.handler_path(table.authorizer), authorizer_sample, args.runs)))

    base = rows[0][1]["import"] + rows[0][1]["first"]
    print(f"cold start, median of {args.runs} fresh processes (Python {sys.version.split()[0]}, this machine)")
    columns = ("import ms", "first call ms", "cold total ms", "vs baseline", "warm ms")
    print(f"{'handler':<34} " + " ".join(f"{c:>14}" for c in columns))
    for name, m in rows:
        if not m:
            print(f"{name:<34} " + f"{'FAILED (see above)':>14}")
            continue
        total = m["import"] + m["first"]
        cells = (f"{m['import']:.1f}", f"{m['first']:.1f}", f"{total:.1f}", f"{total / base:.2f}x", f"{m['warm']:.2f}")
        print(f"{name:<34} " + " ".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
