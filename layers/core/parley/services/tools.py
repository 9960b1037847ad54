"""Running an agent's tool calls: checking the model's arguments against the tool's JSON Schema,
and calling `http` tools (a signed POST to the integrator's endpoint).

What a tool does is never the API caller's error, and never Parley's: a call with arguments the
schema refuses, an endpoint that is down, slow, refused by the egress guard, answers an error or
too much, all become a tool result marked `is_error` with a plain reason, which the model reads
on its next step (it may correct its arguments or tell the user) and history keeps.

The request an http tool receives (JSON, `content-type: application/json`):

    {"type": "tool_call", "tool": <name>, "tool_call_id": <id>, "arguments": <the model's object>,
     "conversation_id": ..., "message_id": <the assistant message that asked>, "agent_id": ...,
     "agent_version": ...}

signed the Standard Webhooks way with the agent's signing secret (`webhook-id` = the call's id,
`webhook-timestamp`, `webhook-signature`), so the endpoint verifies it came from Parley with any
Standard Webhooks library. Its answer: any 2xx; a JSON body `{"output": <string or JSON>}` gives
that output, any other body is the output as it is (text), up to the tool's
`max_response_bytes`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from parley.domain.chat import ToolCall
from parley.domain.signatures import headers as signed_headers
from parley.egress import EgressRefused
from parley.providers.http import make_client

USER_AGENT = "Parley-Tools/1"
MAX_OUTPUT_CHARS = 100_000  # what a tool result stores and sends back to the model


class ToolSpec(Protocol):
    """What running a tool reads of its definition (parley.domain.agents)."""

    type: str
    name: str
    parameters: dict[str, Any]


class HttpSpec(ToolSpec, Protocol):
    url: str
    timeout_seconds: int
    max_response_bytes: int


@dataclass(frozen=True)
class ToolRun:
    """A tool call's result, as the model and history see it."""

    tool_call_id: str
    name: str
    output: str
    is_error: bool = False
    latency_ms: int | None = None
    status_code: int | None = None


@dataclass(frozen=True)
class CallContext:
    conversation_id: str
    message_id: str
    agent_id: str
    agent_version: int


@dataclass
class Runner:
    """What calling tools talks to; tests inject a transport (an httpx.MockTransport) or a clock."""

    transport: httpx.BaseTransport | None = None  # None: the egress guard (outside local mode)
    clock: Callable[[], float] = field(default=time.time)


_runner: Runner | None = None


def runner() -> Runner:
    global _runner
    if _runner is None:
        _runner = Runner()
    return _runner


def set_runner(new: Runner | None) -> None:
    global _runner
    _runner = new


def arguments_of(call: ToolCall, spec: ToolSpec) -> tuple[Any, str | None]:
    """The call's arguments as JSON, and why they do not fit the tool's schema (None: they do)."""
    try:
        arguments = json.loads(call.function.arguments or "{}")
    except ValueError:
        return None, "the arguments are not valid JSON"
    from jsonschema import Draft202012Validator  # noqa: PLC0415 - only agents with tools pay for it

    problems = sorted(Draft202012Validator(spec.parameters).iter_errors(arguments), key=lambda e: list(e.path))
    if problems:
        first = problems[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(the arguments)"
        return arguments, f"the arguments do not match the tool's parameters at {where}: {first.message}"[:1000]
    return arguments, None


def run_http(spec: HttpSpec, call: ToolCall, secret: str, context: CallContext, using: Runner | None = None) -> ToolRun:
    """One signed POST to the tool's endpoint; never raises for what the endpoint or the model did."""
    using = using or runner()
    arguments, problem = arguments_of(call, spec)
    if problem is not None:
        return ToolRun(call.id, spec.name, f"Error: {problem}.", is_error=True)
    body = json.dumps(
        {
            "type": "tool_call",
            "tool": spec.name,
            "tool_call_id": call.id,
            "arguments": arguments,
            "conversation_id": context.conversation_id,
            "message_id": context.message_id,
            "agent_id": context.agent_id,
            "agent_version": context.agent_version,
        },
        separators=(",", ":"),
    )
    message_id = call.id.replace(".", "_") or "call"
    request_headers = signed_headers([secret], message_id, int(using.clock()), body)
    request_headers |= {"content-type": "application/json", "user-agent": USER_AGENT}
    timeout = httpx.Timeout(float(spec.timeout_seconds))
    started = time.monotonic()
    status: int | None = None

    def failed(reason: str) -> ToolRun:
        latency = int((time.monotonic() - started) * 1000)
        return ToolRun(call.id, spec.name, f"Error: {reason}.", True, latency, status)

    try:
        with (
            make_client(using.transport, timeout) as client,
            client.stream("POST", spec.url, content=body.encode(), headers=request_headers) as response,
        ):
            status = response.status_code
            if not 200 <= status < 300:
                return failed(f"the tool's endpoint answered {status}")
            received = bytearray()
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) > spec.max_response_bytes:
                    return failed(f"the tool's answer is over its limit of {spec.max_response_bytes:,} bytes")
    except EgressRefused as refused:
        return failed(f"the tool's URL {refused}")
    except httpx.TimeoutException:
        return failed(f"the tool's endpoint did not answer within {spec.timeout_seconds} s")
    except httpx.HTTPError as failure:
        return failed(f"the request to the tool's endpoint failed ({type(failure).__name__})")
    latency = int((time.monotonic() - started) * 1000)
    return ToolRun(call.id, spec.name, _output(bytes(received)), False, latency, status)


def _output(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:MAX_OUTPUT_CHARS]
    if isinstance(parsed, dict) and "output" in parsed:
        output = parsed["output"]
        text = output if isinstance(output, str) else json.dumps(output, separators=(",", ":"))
    return text[:MAX_OUTPUT_CHARS]
