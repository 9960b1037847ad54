"""The AWS cost of 1,000 conversation turns, from counted requests and measured durations.

Drives N turns (a send each, with its history, in one conversation) through the real handlers
in-process on moto, as API Gateway and the event source mappings invoke them: the authorizer,
`messages_create`, then the tables' stream consumers (`events_emit`, `search_index`) with what
each turn committed, and `webhooks_fanout` with what the bus put on the events queue. Per turn
it records:

- Lambda: requests, and the billed duration per function (each handler's wall time in-process,
  rounded up to 1 ms as Lambda bills) at the memory the route table configures. This part is
  MEASURED on this machine (not a Graviton core), so it varies run to run;
- DynamoDB read and write request units, COUNTED from each call and the sizes of the items it
  read and wrote (moto's ConsumedCapacity figures are not DynamoDB's), with DynamoDB's rules
  (docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html, and the
  on-demand pricing page's key terms): reads in 4 KB units (an eventually consistent read is
  half), writes in 1 KB units of the larger of the item before and after, transactions twice,
  each global secondary index an item lands in one more write (all of Parley's project ALL);
- API Gateway requests and response bytes, EventBridge PutEvents entries (64 KB chunks), SQS
  requests (64 KB chunks: the bus's delivery to the events queue, the mapping's receive and
  delete), Secrets Manager calls, stream records and consumer invocations, log bytes written.

Everything but the Lambda durations is an exact count for the same inputs; re-running
reproduces it. The price table is dated and cited below. Model tokens are priced separately
(`parley.providers.pricing`) for a stated prompt and completion size.

    .venv/bin/python bench/cost_per_turn.py [--turns 200] [--stream] [--auth-every 1]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from parley.api.routing import load_module, load_route_table
from parley.api.streaming import StreamingResponse
from parley.aws import Clients, clients, set_clients
from parley.domain.conversations import ConversationCreate
from parley.providers.pricing import PRICE_VERSION
from parley.providers.pricing import PRICES as MODEL_PRICES
from parley.runtime import events as gateway
from parley.runtime import moto_speedups
from parley.runtime.environments import FakeLambdaContext
from parley.runtime.local import LOCAL_ENV
from parley.runtime.pipeline import Pipeline
from parley.search import factory as search
from parley.search.local import LocalSearchEngine
from parley.services import conversations, limits
from parley.services.keys import authenticate, issue_key
from parley.services.providers import call_cache
from parley.settings import get_settings, set_settings
from parley.storage.provision import provision

ROOT = Path(__file__).resolve().parent.parent
GB = 1024**3
KB = 1024
# Lambda's START, END and REPORT lines per invocation (about 330 bytes together, measured from a
# REPORT line with Init Duration; an estimate, not a count)
PLATFORM_LOG_BYTES = 330
# The authorizer's memory: infra/constructs/functions.py AUTHORIZER_MEMORY_MB (a test checks they agree)
AUTHORIZER_MEMORY_MB = 512


@dataclass(frozen=True)
class Price:
    usd: Decimal
    per: int  # units the price is for
    source: str


# us-east-1 list prices, read 2026-12-04. Where AWS's own page is not in the search corpus the
# source named is what was used; check before budgeting.
PRICES: dict[str, Price] = {
    "lambda_gb_second": Price(
        Decimal("0.0000133334"),
        1,
        "arm64, first 7.5 B GB-s/month: aws.amazon.com/lambda/pricing (archived 2026-06-18 copy; figure "
        "as quoted by cloudchipr.com/blog/aws-lambda-pricing)",
    ),
    "lambda_request": Price(Decimal("0.20"), 1_000_000, "aws.amazon.com/lambda/pricing (as above)"),
    "dynamodb_rru": Price(
        Decimal("0.125"),
        1_000_000,
        "on-demand after the 2024-11-01 50% cut: aws.amazon.com/dynamodb/pricing/on-demand (rate from "
        "airbyte.com/data-engineering-resources/dynamodb-pricing, 2025-07-21; AWS's page renders its "
        "figures from a script)",
    ),
    "dynamodb_wru": Price(Decimal("0.625"), 1_000_000, "as above"),
    "apigw_request": Price(
        Decimal("3.50"),
        1_000_000,
        "REST API, first 333 M/month: aws.amazon.com/api-gateway/pricing (rate from its worked examples, "
        "as quoted by awsforengineers.com 2025-05-19 and amnic.com); response streaming is billed as "
        "requests, no separate streaming rate was found in the corpus",
    ),
    "data_transfer_gb": Price(Decimal("0.09"), 1, "data transfer out to the internet, first 10 TB (same pages)"),
    "eventbridge_event": Price(
        Decimal("1.00"),
        1_000_000,
        "custom events, 64 KB chunks: aws.amazon.com/eventbridge/pricing (not in the corpus; "
        "cloudburn.io/blog/amazon-eventbridge-pricing, 2026-03-13)",
    ),
    "sqs_request": Price(
        Decimal("0.40"),
        1_000_000,
        "standard queue, 64 KB chunks: aws.amazon.com/sqs/pricing (not in the corpus; "
        "cloudburn.io/blog/amazon-sqs-pricing, 2026-03-14)",
    ),
    "secrets_call": Price(
        Decimal("0.05"), 10_000, "aws.amazon.com/secrets-manager/pricing (not in the corpus; hivebook.wiki)"
    ),
    "logs_gb": Price(
        Decimal("0.50"),
        1,
        "CloudWatch Logs standard ingestion: aws.amazon.com/cloudwatch/pricing (not in the corpus; "
        "c3x.dev and hykell.com, 2026)",
    ),
    # the fixed monthly floor
    "aoss_ocu_hour": Price(
        Decimal("0.24"), 1, "OpenSearch Serverless OCU-hour: docs/architecture.md, Search stack (third-party quote)"
    ),
    "secret_month": Price(Decimal("0.40"), 1, "per secret per month: Secrets Manager pricing (as above)"),
}
MODELS = {  # per-token prices: parley.providers.pricing (the metering table), PRICE_VERSION
    "gpt-4o-mini (OpenAI)": "gpt-4o-mini",
    "Claude 3.5 Haiku (Bedrock)": "claude-3-5-haiku",
}


@dataclass
class Meter:
    """What a run counted. `durations` per function: billed milliseconds of each invocation."""

    counts: Counter[str] = field(default_factory=Counter)
    durations: dict[str, list[int]] = field(default_factory=dict)
    operations: Counter[str] = field(default_factory=Counter)

    def add(self, name: str, amount: float = 1) -> None:
        self.counts[name] += amount  # type: ignore[assignment]


# --- DynamoDB request units ----------------------------------------------------------------------


def attribute_size(value: dict[str, Any]) -> int:
    """An attribute value's size, as DynamoDB's "Item sizes and formats" page gives it: strings and
    binaries by length (UTF-8), numbers about 1 byte per 2 significant digits plus 1, booleans and
    null 1 byte, lists and maps 3 bytes plus their elements (plus 1 per element), sets their members."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "B":
        return len(inner)
    if kind == "N":
        digits = str(inner).lstrip("-").replace(".", "").lstrip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in inner.items())
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(attribute_size({"N": n}) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in (item or {}).items())


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / (4 * KB)))
    return float(units) if consistent else units / 2


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


class DynamoDBUnits:
    """botocore hooks on the functions' DynamoDB client: every call's request units, from the items'
    sizes. Writes read the item before and after the call through `shadow` (an uncounted client)."""

    def __init__(self, meter: Meter, shadow: Any) -> None:
        self.meter, self.shadow = meter, shadow
        self.tables: dict[str, tuple[list[str], list[list[str]]]] = {}
        self.overhead = 0.0  # seconds spent reading images (subtracted from the measured durations)

    def schema(self, table: str) -> tuple[list[str], list[list[str]]]:
        """(key attribute names, each GSI's key attribute names)."""
        if table not in self.tables:
            described = self.shadow.describe_table(TableName=table)["Table"]
            keys = [k["AttributeName"] for k in described["KeySchema"]]
            indexes = [
                [k["AttributeName"] for k in i["KeySchema"]] for i in described.get("GlobalSecondaryIndexes", [])
            ]
            self.tables[table] = (keys, indexes)
        return self.tables[table]

    def image(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        started = time.perf_counter()
        item: dict[str, Any] | None = self.shadow.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        self.overhead += time.perf_counter() - started
        return item

    def writes_of(self, operation: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any], int, bool]]:
        """(table, key, multiplier, is_condition_check) of each item a write touches."""
        found: list[tuple[str, dict[str, Any], int, bool]] = []

        def key_of(table: str, item: dict[str, Any]) -> dict[str, Any]:
            return {k: item[k] for k in self.schema(table)[0]}

        if operation == "PutItem":
            found.append((params["TableName"], key_of(params["TableName"], params["Item"]), 1, False))
        elif operation in ("UpdateItem", "DeleteItem"):
            found.append((params["TableName"], params["Key"], 1, False))
        elif operation == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        found.append((table, key_of(table, request["PutRequest"]["Item"]), 1, False))
                    else:
                        found.append((table, request["DeleteRequest"]["Key"], 1, False))
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (kind, action), *_ = entry.items()
                key = key_of(action["TableName"], action["Item"]) if kind == "Put" else action["Key"]
                found.append((action["TableName"], key, 2, kind == "ConditionCheck"))
        return found

    def before(self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """(before-parameter-build: the API's parameters) the items a write touches, as they are now."""
        operation = model.name
        self.meter.operations[f"dynamodb.{operation}"] += 1
        writes = self.writes_of(operation, params)
        context["cost"] = (dict(params), writes, [self.image(t, k) for t, k, _, _ in writes])

    def after(self, model: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        operation = model.name
        params, writes, before_images = context.pop("cost")
        consistent = bool(params.get("ConsistentRead"))
        if operation == "GetItem":
            self.meter.add("dynamodb_rru", read_units(item_size(parsed.get("Item")), consistent))
        elif operation == "Query" or operation == "Scan":
            size = sum(item_size(i) for i in parsed.get("Items", []))
            self.meter.add("dynamodb_rru", read_units(size, consistent))
        elif operation == "BatchGetItem":
            for table, items in parsed.get("Responses", {}).items():
                strong = bool(params["RequestItems"][table].get("ConsistentRead"))
                for item in items:
                    self.meter.add("dynamodb_rru", read_units(item_size(item), strong))
        elif operation == "TransactGetItems":
            for response in parsed.get("Responses", []):
                self.meter.add("dynamodb_rru", 2 * read_units(item_size(response.get("Item")), True))
        for (table, key, multiplier, _check), old in zip(writes, before_images, strict=True):
            new = self.image(table, key)
            size = max(item_size(old), item_size(new))
            self.meter.add("dynamodb_wru", multiplier * write_units(size))
            for index_keys in self.schema(table)[1]:  # each GSI the item was or is in: one more write
                was = old is not None and all(k in old for k in index_keys)
                now = new is not None and all(k in new for k in index_keys)
                moved = was and now and any(old[k] != new[k] for k in index_keys)  # type: ignore[index]
                if was or now:
                    self.meter.add("dynamodb_wru", (2 if moved else 1) * write_units(size))


# --- the other services ----------------------------------------------------------------------------


def count_calls(meter: Meter, service: str, client: Any, *, skip: frozenset[str] = frozenset()) -> None:
    def hook(model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name in skip:
            return
        meter.operations[f"{service}.{model.name}"] += 1
        if service == "events" and model.name == "PutEvents":
            for entry in params["Entries"]:
                chunks = math.ceil(len(json.dumps(entry, default=str).encode()) / (64 * KB))
                meter.add("eventbridge_event", chunks)
                meter.add("sqs_request", chunks)  # the bus's rule delivers each event to the events queue
        elif service == "sqs":
            bodies = [params.get("MessageBody", "")] + [e.get("MessageBody", "") for e in params.get("Entries", [])]
            chunks = max(1, sum(math.ceil(len(b.encode()) / (64 * KB)) for b in bodies if b))
            meter.add("sqs_request", chunks)
        elif service == "secretsmanager":
            meter.add("secrets_call")

    client.meta.events.register(f"before-parameter-build.{client.meta.service_model.service_id.hyphenize()}", hook)


class Output(io.TextIOBase):
    """sys.stdout while the handlers run: counts the bytes they log (Powertools' JSON lines and
    EMF metrics go to stdout, as on Lambda), keeps nothing."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, text: str) -> int:
        self.bytes += len(text.encode())
        return len(text)

    def writable(self) -> bool:
        return True


# --- driving the turns -----------------------------------------------------------------------------


@dataclass
class Run:
    turns: int
    stream: bool
    auth_every: int
    meter: Meter = field(default_factory=Meter)
    stream_records: int = 0
    response_bytes: int = 0
    tokens: Counter[str] = field(default_factory=Counter)


def memory_of(table: Any) -> dict[str, int]:
    memory = {table.authorizer: AUTHORIZER_MEMORY_MB}
    for route in table.routes:
        memory[route.function] = max(memory.get(route.function, 0), route.memory_mb)
    for job in (*table.consumers, *table.scheduled):
        memory[job.function] = job.memory_mb
    return memory


def drive(run: Run) -> None:

    saved = dict(os.environ)
    for name, value in LOCAL_ENV.items():
        os.environ.setdefault(name, value)
    # as deployed: INFO logs and Powertools metrics (EMF on stdout) count as log bytes
    os.environ.update(POWERTOOLS_LOG_LEVEL="INFO", POWERTOOLS_METRICS_DISABLED="false")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Parley")
    # moto's per-transaction deepcopy of whole tables (time and memory growing with history) off,
    # as the local server has it; the bench is single-threaded, which these patches need
    moto_speedups.install()
    set_clients(None)  # nothing cached from before: this run's clients talk to this run's moto
    set_settings(None)
    # nor an earlier run's providers (a cached miss saves this run's reads) or spend: each run
    # starts from fresh execution environments, so two runs count the same units
    call_cache().clear()
    limits.clear_cache()
    folder = tempfile.mkdtemp(prefix="parley-cost-")
    search.set_engine(LocalSearchEngine(Path(folder) / "search.sqlite3"))
    table = load_route_table(ROOT / "functions" / "routes.py")
    memory = memory_of(table)
    meter = run.meter
    output = Output()
    # From here on stdout is the log sink: loggers made now (the handlers') write to it, as on Lambda.
    real_stdout = sys.stdout
    sys.stdout = output  # type: ignore[assignment]
    try:
        with mock_aws():
            provision()
            key = issue_key("org_bench", "proj_bench", ("*",), name="bench")
            conversation = _create_conversation(key.secret)
            aws = clients()
            shadow = boto3.client("dynamodb", region_name=get_settings().region)
            units = DynamoDBUnits(meter, shadow)
            aws.dynamodb.meta.events.register("before-parameter-build.dynamodb", units.before)
            aws.dynamodb.meta.events.register("after-call.dynamodb", units.after)
            count_calls(meter, "events", aws.events)
            count_calls(meter, "secretsmanager", aws.secretsmanager)
            count_calls(meter, "sqs", aws.sqs, skip=frozenset({"CreateQueue", "GetQueueUrl"}))
            handlers: dict[str, Any] = {}

            def invoke(function: str, event: dict[str, Any]) -> Any:
                if function not in handlers:  # loaded (cold) outside the measurement
                    handlers[function] = load_module(table.handler_path(function), f"cost_{function}").lambda_handler
                context = FakeLambdaContext(
                    function, f"cost-{len(meter.durations.get(function, []))}", memory[function]
                )
                before, overhead = output.bytes, units.overhead
                started = time.perf_counter()
                result = handlers[function](event, context)
                body = b""
                if isinstance(result, StreamingResponse):
                    body = b"".join(result.body)  # a stream bills until its last byte
                elif isinstance(result, dict) and isinstance(result.get("body"), str):
                    body = result["body"].encode()
                elapsed = time.perf_counter() - started - (units.overhead - overhead)  # not the bench's own reads
                meter.durations.setdefault(function, []).append(max(1, math.ceil(elapsed * 1000)))
                meter.add("log_bytes", output.bytes - before + PLATFORM_LOG_BYTES)
                meter.add(f"invocations.{function}")
                return result, body

            consumers = tuple(c for c in table.consumers if c.function in ("events_emit", "search_index"))
            queue_consumers = tuple(c for c in table.consumers if c.function == "webhooks_fanout")

            def pipeline_invoke(function: str, event: dict[str, Any], timeout: float) -> Any:
                if function in ("events_emit",):
                    run.stream_records += len(event["Records"])
                return invoke(function, event)[0]

            pipeline_clients = _pipeline_clients(aws)
            pipeline = Pipeline(
                (*consumers, *queue_consumers), pipeline_invoke, pipeline_clients, get_settings(), backoff_seconds=0
            )
            pipeline.drain()  # the conversation's creation, not a turn
            meter.counts.clear()
            meter.durations.clear()
            meter.operations.clear()
            run.stream_records = 0
            count_calls(meter, "sqs", pipeline_clients.sqs, skip=frozenset({"CreateQueue", "GetQueueUrl"}))

            for turn in range(run.turns):
                _turn(run, turn, conversation, key.secret, invoke, gateway)
                pipeline.drain()
    finally:
        sys.stdout = real_stdout
        os.environ.clear()
        os.environ.update(saved)
        set_clients(None)
        set_settings(None)
        moto_speedups.uninstall()
        search.set_engine(None)
        shutil.rmtree(folder, ignore_errors=True)


def _pipeline_clients(aws: Any) -> Any:
    """The event source mappings' own clients (their SQS receives and deletes are counted apart
    from the functions'; their stream reads are free: Lambda's DynamoDB Streams reads are not billed)."""

    return Clients()


def _create_conversation(secret: str) -> str:

    principal = authenticate(secret)
    return conversations.create(principal, ConversationCreate(title="cost bench", user_id="user_bench")).id


def _turn(run: Run, turn: int, conversation: str, secret: str, invoke: Callable[..., Any], gateway: Any) -> None:
    """One user turn: API Gateway's request (and, every `auth_every` turns, its authorizer call),
    the send with its stored reply."""
    path = f"/v1/conversations/{conversation}/messages"
    resource = "/v1/conversations/{conversation_id}/messages"
    headers = {"authorization": [f"Bearer {secret}"], "content-type": ["application/json"]}
    meter = run.meter
    meter.add("apigw_request")
    if turn % run.auth_every == 0:
        event = gateway.authorizer_event("POST", path, resource, headers=headers)
        policy, _ = invoke("authorizer", event)
    else:
        policy, _ = run.__dict__["_policy"], None
    run.__dict__["_policy"] = policy
    # a deterministic user message of about 60 words, different each turn
    words = " ".join(f"word{(turn * 7 + i) % 97}" for i in range(60))
    body = json.dumps({"content": f"Turn {turn}: {words}", "stream": run.stream}).encode()
    event = gateway.proxy_event(
        "POST",
        path,
        resource,
        path_parameters={"conversation_id": conversation},
        headers=headers,
        body=body,
        authorizer={"principalId": policy["principalId"], **policy["context"]},
    )
    result, response = invoke("messages_create", event)
    status = getattr(result, "status", None) or result.get("statusCode")
    if status != 200:
        raise RuntimeError(f"turn {turn}: HTTP {status}: {response[:300]!r}")
    run.response_bytes += len(response)
    meter.add("response_bytes", len(response))
    usage = _usage(response, run.stream)
    run.tokens.update(usage)


def _usage(response: bytes, stream: bool) -> dict[str, int]:
    if not stream:
        usage = json.loads(response).get("usage") or {}
    else:
        done = [line for line in response.decode().splitlines() if line.startswith("data:") and '"done"' in line]
        usage = json.loads(done[-1][5:]).get("usage") or {} if done else {}
    return {k: int(usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens")}


# --- the table ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    component: str
    units_per_turn: float
    unit: str
    usd_per_1000: Decimal
    kind: str  # "counted" or "measured"


def cost_lines(run: Run, memory: dict[str, int]) -> list[Line]:
    n = run.turns
    counts = run.meter.counts

    def per_thousand(price: str, units: float) -> Decimal:
        p = PRICES[price]
        return Decimal(str(units)) * 1000 / n * p.usd / p.per

    lines: list[Line] = []
    invocations = {k.split(".", 1)[1]: v for k, v in counts.items() if k.startswith("invocations.")}
    for function in sorted(invocations):
        calls = invocations[function]
        ms = sum(run.meter.durations[function])
        gb_seconds = ms / 1000 * memory[function] / 1024
        lines.append(
            Line(
                f"Lambda {function} ({memory[function]} MB): duration",
                ms / n,
                "billed ms",
                per_thousand("lambda_gb_second", gb_seconds),
                "measured",
            )
        )
        lines.append(
            Line(
                f"Lambda {function}: requests",
                calls / n,
                "invocations",
                per_thousand("lambda_request", calls),
                "counted",
            )
        )
    simple = (
        ("DynamoDB reads", "dynamodb_rru", "RRU"),
        ("DynamoDB writes", "dynamodb_wru", "WRU"),
        ("API Gateway requests", "apigw_request", "requests"),
        ("EventBridge events", "eventbridge_event", "events"),
        ("SQS requests", "sqs_request", "requests"),
        ("Secrets Manager calls", "secrets_call", "calls"),
    )
    for name, price, unit in simple:
        lines.append(Line(name, counts[price] / n, unit, per_thousand(price, counts[price]), "counted"))
    lines.append(
        Line(
            "Data transfer out (responses)",
            counts["response_bytes"] / n,
            "bytes",
            per_thousand("data_transfer_gb", counts["response_bytes"] / GB),
            "counted",
        )
    )
    lines.append(
        Line(
            "CloudWatch Logs ingestion",
            counts["log_bytes"] / n,
            "bytes",
            per_thousand("logs_gb", counts["log_bytes"] / GB),
            "counted",
        )
    )
    return lines


def monthly_floor(standby: bool) -> list[tuple[str, Decimal]]:
    ocus = 4 if standby else 2  # 0.5 OCU x 2 for indexing and for search; half without standby replicas
    aoss = Decimal(ocus) * Decimal("0.5") * PRICES["aoss_ocu_hour"].usd * 730
    return [
        (
            f"OpenSearch Serverless, {ocus} x 0.5 OCU x 730 h ({'prod: standby' if standby else 'other stages'})",
            aoss,
        ),
        ("Secrets Manager: the cursor-signing key (1 secret)", PRICES["secret_month"].usd),
        (
            "Secrets Manager: each provider with an API key, each agent's and webhook's secret",
            PRICES["secret_month"].usd,
        ),
        ("KMS: none (AWS-owned keys on tables, queues, bucket, collection)", Decimal(0)),
    ]


def render(run: Run, lines: list[Line], memory: dict[str, int], args: argparse.Namespace) -> str:

    out = io.StringIO()
    w = out.write
    w(
        f"Cost per 1,000 conversation turns, us-east-1 (prices read 2026-12-04): {run.turns} turns, "
        f"{'streamed' if run.stream else 'buffered'} sends, one conversation growing to {2 * run.turns} "
        f"messages, the echo model, authorizer invoked every {run.auth_every} turn(s)\n"
    )
    w(f"{'component':<52} {'per turn':>12} {'unit':<12} {'$ / 1,000 turns':>16}  kind\n")
    for line in lines:
        w(
            f"{line.component:<52} {line.units_per_turn:>12.3f} {line.unit:<12} "
            f"{line.usd_per_1000:>16.6f}  {line.kind}\n"
        )
    counted = sum((line.usd_per_1000 for line in lines if line.kind == "counted"), Decimal(0))
    measured = sum((line.usd_per_1000 for line in lines if line.kind == "measured"), Decimal(0))
    w(f"{'total (AWS, model tokens excluded)':<52} {'':>12} {'':<12} {counted + measured:>16.6f}\n")
    w(f"{'  of which counted (exact for these inputs)':<52} {'':>12} {'':<12} {counted:>16.6f}\n")
    w(f"{'  of which Lambda duration (measured here)':<52} {'':>12} {'':<12} {measured:>16.6f}\n")
    records = run.stream_records / run.turns
    w(f"stream records per turn: {records:.2f} (each consumer gets them in one batch per turn at low traffic)\n")
    w(
        "DynamoDB calls per turn: "
        + ", ".join(
            f"{op.split('.', 1)[1]} {n / run.turns:.2f}"
            for op, n in sorted(run.meter.operations.items())
            if op.startswith("dynamodb.")
        )
        + "\n"
    )
    w(
        f"\nModel tokens per 1,000 turns at {args.prompt_tokens:,} prompt + {args.completion_tokens:,} completion "
        f"tokens a turn (prices: parley.providers.pricing, {PRICE_VERSION}; the echo run reported "
        f"{run.tokens['prompt_tokens'] / run.turns:.0f} + {run.tokens['completion_tokens'] / run.turns:.0f}):\n"
    )
    for label, model in MODELS.items():
        price = MODEL_PRICES[model]
        usd = (price.input * args.prompt_tokens + price.output * args.completion_tokens) * 1000 / 1_000_000
        w(f"  {label:<30} ${price.input}/M in, ${price.output}/M out: ${usd:.2f} per 1,000 turns\n")
    w("\nFixed monthly floor (whatever the traffic):\n")
    for standby in (True, False):
        rows = monthly_floor(standby)
        for name, usd in rows[:1]:
            w(f"  {name:<100} ${usd:,.2f}\n")
    for name, usd in monthly_floor(True)[1:]:
        w(f"  {name:<100} ${usd:,.2f}\n")
    w("\nPrices:\n")
    for name, price in PRICES.items():
        w(f"  {name:<18} ${price.usd} per {price.per:,}: {price.source}\n")
    return out.getvalue()


def main(argv: list[str] | None = None) -> Run:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--stream", action="store_true", help="streamed sends (SSE) instead of buffered ones")
    parser.add_argument(
        "--auth-every",
        type=int,
        default=1,
        help="invoke the authorizer every N turns (API Gateway caches a key's authorization 30 s; 1 = every turn)",
    )
    parser.add_argument("--prompt-tokens", type=int, default=1500)
    parser.add_argument("--completion-tokens", type=int, default=300)
    args = parser.parse_args(argv)
    run = Run(turns=args.turns, stream=args.stream, auth_every=args.auth_every)
    drive(run)

    memory = memory_of(load_route_table(ROOT / "functions" / "routes.py"))
    print(render(run, cost_lines(run, memory), memory, args), end="")
    return run


if __name__ == "__main__":
    main()
