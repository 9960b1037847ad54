"""Where one chat completion's time goes inside its handler, in process (no HTTP server, no
authorizer cache): the handler invoked with its API Gateway event, on moto in this process,
against bench/gateway.py's fast fake upstream on 127.0.0.1, with a default provider.

Each phase's time is exclusive (what it spent outside the phases nested in it), per call, over
N warm calls: the authorizer (invoked on its own, as API Gateway does on a cache miss), provider
resolution, the upstream call (the adapter and its HTTP round trip), metering, every DynamoDB and
Secrets Manager call (by operation and by the phase that made it), and the rest of the handler
(Powertools routing, validation, logging, the error model, encoding).

    .venv/bin/python -m bench.handler_profile [calls]
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moto import mock_aws
from pydantic import SecretStr

from bench.gateway import MODEL, _Upstream, _UpstreamServer
from parley.api.routing import load_module, load_route_table
from parley.aws import clients
from parley.domain.principal import Principal
from parley.domain.providers import ProviderCreate
from parley.providers.openai import OpenAIProvider
from parley.runtime.local import LOCAL_ENV, FakeLambdaContext
from parley.services import completions, metering, providers, registry
from parley.services.keys import issue_key
from parley.storage.provision import provision

ROOT = Path(__file__).resolve().parent.parent


class Profile:
    """A stack of phases; each phase's exclusive time is its time minus its children's."""

    def __init__(self) -> None:
        self.stack: list[list[Any]] = []  # [name, started, children's time]
        self.call: dict[str, float] = defaultdict(float)

    def enter(self, name: str) -> None:
        self.stack.append([name, time.perf_counter(), 0.0])

    def leave(self) -> None:
        name, started, children = self.stack.pop()
        spent = time.perf_counter() - started
        self.call[name] += spent - children
        if self.stack:
            self.stack[-1][2] += spent

    def phase(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.enter(name)
            try:
                return function(*args, **kwargs)
            finally:
                self.leave()

        return wrapped


def main() -> int:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    for name, value in LOCAL_ENV.items():
        os.environ.setdefault(name, value)
    upstream = _UpstreamServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    with mock_aws():
        return _run(calls, f"http://127.0.0.1:{upstream.server_address[1]}/v1")


def _run(calls: int, upstream_url: str) -> int:
    provision()
    secret = "prl_" + "b" * 43
    issue_key("org_prof", "proj_prof", ("*",), name="bench", secret=secret)
    caller = Principal("org_prof", "proj_prof", "key_prof", ("*",))
    providers.create(
        caller,
        ProviderCreate(
            type="openai",
            name="bench",
            base_url=upstream_url,
            api_key=SecretStr("sk-bench"),
            default_model=MODEL,
            is_default=True,
        ),
    )
    table = load_route_table(ROOT / "functions" / "routes.py")
    handler = load_module(table.handler_path("completions_create"), "bench_completions").lambda_handler
    authorizer = load_module(table.handler_path("authorizer"), "bench_authorizer").lambda_handler
    sample = json.loads((ROOT / "events" / "api" / "completions_create.json").read_text())
    sample["body"] = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}]})
    sample["requestContext"]["authorizer"] = {"principalId": caller.key_id, **caller.to_context()}
    auth_event = {
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:api/prod/POST/v1/chat/completions",
        "resource": "/v1/chat/completions",
        "path": "/v1/chat/completions",
        "httpMethod": "POST",
        "headers": {"Authorization": f"Bearer {secret}"},
        "requestContext": {"stage": "prod", "requestId": "r", "httpMethod": "POST"},
    }

    profile = Profile()
    context = FakeLambdaContext("completions_create", "bench")
    timings: dict[str, list[float]] = defaultdict(list)

    def before(model: Any, **_: Any) -> None:
        owner = profile.stack[-1][0] if profile.stack else "handler"
        profile.enter(f"  {model.service_model.service_name} {model.name} (in {owner.strip()})")

    def after(**_: Any) -> None:
        profile.leave()

    for client in (clients().dynamodb, clients().secretsmanager):
        client.meta.events.register("before-call", before)
        client.meta.events.register("after-call", after)
    registry.resolve = profile.phase("provider resolution", registry.resolve)
    OpenAIProvider.complete = profile.phase("upstream (adapter + HTTP)", OpenAIProvider.complete)  # type: ignore[method-assign]
    vars(completions)["record_call"] = profile.phase("metering", metering.record_call)  # the name it calls
    timed_handler = profile.phase("handler (routing, validation, logging, encoding)", handler)
    timed_authorizer = profile.phase("authorizer (uncached)", authorizer)

    for i in range(calls + 20):
        profile.call.clear()
        started = time.perf_counter()
        decision = timed_authorizer(copy.deepcopy(auth_event), context)
        result = timed_handler(copy.deepcopy(sample), context)
        total = time.perf_counter() - started
        if result["statusCode"] != 200 or "Allow" not in json.dumps(decision):
            print("a call failed:", result.get("statusCode"), str(result.get("body"))[:300], file=sys.stderr)
            return 1
        if i >= 20:  # warm
            for name, spent in profile.call.items():
                timings[name].append(spent * 1000)
            timings["total"].append(total * 1000)
    print(f"one chat completion, in process on moto (mean and p50 per call over {calls} warm calls, ms)")
    print(f"{'phase (exclusive time)':78} {'mean':>7} {'p50':>7} {'share':>6}")
    whole = statistics.mean(timings["total"])
    for name, values in sorted(timings.items(), key=lambda kv: -statistics.mean(kv[1])):
        if name == "total":
            continue
        mean = sum(values) / calls  # a phase a call skips counts 0 for it
        print(f"{name:78} {mean:7.2f} {statistics.median(values):7.2f} {mean / whole:6.0%}")
    print(f"{'total':78} {whole:7.2f} {statistics.median(timings['total']):7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
