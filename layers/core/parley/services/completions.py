"""Stateless chat completions (seed 000's chatCompletion, seed 003's stateless completions).

Every call is routed (parley.providers.registry), retried and failed over before its first
token (parley.providers.resilient), and metered and audited once it ends, however it ends
(parley.services.metering).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from parley.api import sse
from parley.api.errors import body_for
from parley.api.principal import Principal
from parley.domain.chat import AssistantMessage, ChatCompletion, ChatCompletionRequest, ChatMessage, Choice, Usage
from parley.domain.errors import InvalidRequest, ParleyError
from parley.domain.ids import new_id
from parley.providers import registry
from parley.providers.base import Finish, ModelRequest, StreamEvent, TextDelta, ToolCallDelta
from parley.providers.resilient import Outcome, Resilient, RetryPolicy
from parley.services import documents
from parley.services.metering import CallRecord, record_call

ROUTE = "POST /v1/chat/completions"


@dataclass
class CallContext:
    """Where a completion call comes from, for metering and audit."""

    route: str = ROUTE
    request_id: str = ""
    resource_ids: list[str] = field(default_factory=list)


def _with_documents(principal: Principal, messages: list[ChatMessage]) -> list[ChatMessage]:
    """Messages that name a document_id get that document's text as their content."""
    resolved = []
    for i, message in enumerate(messages):
        if message.document_id is None:
            resolved.append(message)
            continue
        _, text = documents.text_of(principal, message.document_id, f"messages[{i}].document_id")
        resolved.append(ChatMessage(role=message.role, content=text, name=message.name))
    return resolved


def _model_request(principal: Principal, request: ChatCompletionRequest) -> ModelRequest:
    messages = _with_documents(principal, list(request.messages))
    if request.system_message is not None and messages[0].role not in ("system", "developer"):
        messages.insert(0, ChatMessage(role="system", content=request.system_message))
    return ModelRequest(
        model=request.model or "",
        messages=messages,
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.output_limit,
        stop=request.stop_sequences,
        tools=request.tools or (),
        tool_choice=request.tool_choice,
        response_format=request.response_format,
        user=request.user,
        seed=request.seed,
        presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty,
        parallel_tool_calls=request.parallel_tool_calls,
    )


def _prepare(principal: Principal, request: ChatCompletionRequest) -> tuple[Resilient, ModelRequest]:
    if request.use_rag or request.index_id:
        raise InvalidRequest(
            "Retrieval (use_rag, index_id) is not available yet: no knowledge indexes exist.",
            code="feature_unavailable",
            param="use_rag" if request.use_rag else "index_id",
        )
    targets = registry.resolve(principal, request.model, request.provider_id, request.fallbacks)
    return Resilient(targets, RetryPolicy()), _model_request(principal, request)


def _audit(
    principal: Principal,
    context: CallContext,
    model: str,
    started: float,
    *,
    status: int,
    outcome: str,
    usage: Usage | None = None,
    result: Outcome | None = None,
    error: ParleyError | None = None,
) -> None:
    record_call(
        principal,
        CallRecord(
            route=context.route,
            request_id=context.request_id,
            model=result.target.model if result else model,
            status=status,
            outcome=outcome,  # type: ignore[arg-type]
            latency_ms=int((time.monotonic() - started) * 1000),
            usage=usage,
            provider_id=result.target.provider_id if result else None,
            error_code=error.code if error else None,
            resource_ids=list(context.resource_ids),
            tries=result.tries if result else 1,
        ),
    )


def create(principal: Principal, request: ChatCompletionRequest, context: CallContext | None = None) -> ChatCompletion:
    context = context or CallContext()
    started = time.monotonic()
    runner, model_request = _prepare(principal, request)
    try:
        reply, outcome = runner.complete(model_request)
    except ParleyError as error:
        _audit(
            principal,
            context,
            model_request.model or runner.targets[0].model,
            started,
            status=error.status,
            outcome="failed",
            error=error,
        )
        raise
    _audit(
        principal,
        context,
        outcome.target.model,
        started,
        status=200,
        outcome="succeeded",
        usage=reply.usage,
        result=outcome,
    )
    return ChatCompletion(
        id=new_id("chatcmpl"),
        created=int(time.time()),
        model=outcome.target.model,
        choices=[
            Choice(
                message=AssistantMessage(content=reply.content, tool_calls=list(reply.tool_calls) or None),
                finish_reason=reply.finish_reason,
            )
        ],
        usage=reply.usage,
    )


def stream(principal: Principal, request: ChatCompletionRequest, context: CallContext | None = None) -> Iterator[bytes]:
    """OpenAI `chat.completion.chunk` events, then `data: [DONE]`.

    Everything that can be refused is checked here, and the provider has produced its first
    event (after retries and fallback) before this returns: an error up to that point is an
    ordinary JSON error with its status. A failure after it ends the stream with an error event.
    """
    context = context or CallContext()
    started = time.monotonic()
    runner, model_request = _prepare(principal, request)
    try:
        events, outcome = runner.stream(model_request)
    except ParleyError as error:
        _audit(principal, context, runner.targets[0].model, started, status=error.status, outcome="failed", error=error)
        raise
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return _chunks(principal, context, events, outcome, include_usage, started)


def _chunks(
    principal: Principal,
    context: CallContext,
    events: Iterator[StreamEvent],
    outcome: Outcome,
    include_usage: bool,
    started: float,
) -> Iterator[bytes]:
    completion_id, created, model = new_id("chatcmpl"), int(time.time()), outcome.target.model
    usage_field = {"usage": None} if include_usage else {}

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return sse.data(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": choices,
                **usage_field,
                **extra,
            }
        )

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    usage: Usage | None = None
    status, result, failure = 200, "incomplete", None
    try:
        yield chunk(choice({"role": "assistant", "content": ""}))
        for event in events:
            if isinstance(event, TextDelta):
                yield chunk(choice({"content": event.text}))
            elif isinstance(event, ToolCallDelta):
                yield chunk(choice({"tool_calls": [_tool_call_delta(event)]}))
            elif isinstance(event, Finish):
                usage = event.usage
                yield chunk(choice({}, event.reason))
                if include_usage:
                    yield chunk([], usage=event.usage.model_dump(exclude_none=True))
        result = "succeeded"
        yield sse.done()
    except ParleyError as error:
        status, result, failure = error.status, "failed", error
        yield sse.data(body_for(error, context.request_id or None))
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
        _audit(
            principal,
            context,
            model,
            started,
            status=status,
            outcome=result,
            usage=usage,
            result=outcome,
            error=failure,
        )


def _tool_call_delta(delta: ToolCallDelta) -> dict[str, Any]:
    """OpenAI's streamed tool call piece: id, type and name on the first piece only."""
    function: dict[str, Any] = {"arguments": delta.arguments}
    piece: dict[str, Any] = {"index": delta.index}
    if delta.id is not None:
        piece.update(id=delta.id, type="function")
    if delta.name is not None:
        function = {"name": delta.name, **function}
    piece["function"] = function
    return piece
