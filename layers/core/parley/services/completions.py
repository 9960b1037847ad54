"""Stateless chat completions (seed 000's chatCompletion, seed 003's stateless completions).

Every call is routed (parley.services.registry), retried and failed over before its first
token (parley.providers.resilient), and metered and audited once it ends, however it ends
(parley.services.metering).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from parley.domain.chat import (
    ChatCompletionRequest,
    ChatMessage,
    FunctionDefinition,
    Tool,
    ToolChoiceFunction,
    Usage,
)
from parley.domain.errors import InvalidRequest, ParleyError
from parley.domain.ids import new_id
from parley.domain.indexes import Citation
from parley.domain.keys import Quota
from parley.domain.principal import Principal
from parley.domain.replies import Finished, ReplyDone, ReplyEvent, ReplyFailed, ReplyStarted, TextDelta, ToolCallDone
from parley.providers.base import ModelRequest, dropped_fields, shape_fields
from parley.providers.resilient import Outcome, Resilient, RetryPolicy, Target
from parley.services import documents, limits, rag, registry
from parley.services.metering import CallRecord, record_call
from parley.services.replies import Ending, relay

ROUTE = "POST /v1/chat/completions"


@dataclass
class CallContext:
    """Where a completion call comes from, for metering and audit."""

    route: str = ROUTE
    request_id: str = ""
    resource_ids: list[str] = field(default_factory=list)
    user: str | None = None  # the end user, for budgets per user
    quota: Quota | None = None  # set by the service: where the call left its rate limits
    citations: tuple[Citation, ...] = ()  # set by the service: what retrieval gave the model
    # set by the service: the request fields the answering provider did not honour
    dropped: list[str] = field(default_factory=list)


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


def _model_request(
    principal: Principal, request: ChatCompletionRequest, citations: tuple[Citation, ...] = ()
) -> ModelRequest:
    messages = _with_documents(principal, list(request.messages))
    if request.system_message is not None and messages[0].role not in ("system", "developer"):
        messages.insert(0, ChatMessage(role="system", content=request.system_message))
    tools, tool_choice = list(request.tools or ()), request.tool_choice
    # The deprecated functions and function_call are the tools and tool_choice they became (the
    # reply carries tool_calls).
    tools += [
        Tool(type="function", function=FunctionDefinition(**f.model_dump(exclude_none=True)))
        for f in request.functions or ()
    ]
    if tool_choice is None and request.function_call is not None:
        call = request.function_call
        tool_choice = call if isinstance(call, str) else ToolChoiceFunction(type="function", function=call)
    options = {k: v for k, v in request.passthrough().items() if k not in ("functions", "function_call")}
    messages = rag.grounded(messages, citations)
    return ModelRequest(
        model=request.model or "",
        messages=messages,
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.output_limit,
        stop=request.stop_sequences,
        tools=tools,
        tool_choice=tool_choice,
        response_format=request.response_format,
        user=request.user,
        seed=request.seed,
        presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty,
        parallel_tool_calls=request.parallel_tool_calls,
        options=options,
    )


def _check_shape(targets: list[Target], request: ModelRequest) -> None:
    """A field that would change the result's shape (several choices, log probabilities, audio) is
    refused, naming the field and the provider: no adapter's reply can carry it."""
    names = shape_fields(request)
    if names:
        name, target = names[0], targets[0]
        where = f" ({target.provider_id})" if target.provider_id else ""
        raise InvalidRequest(
            f"{name} is not available with the {target.provider.name} provider{where} serving model "
            f"{target.model!r}: Parley's replies carry one choice of text and tool calls.",
            code="unsupported_parameter",
            param=name,
        )


def dropped(outcome: Outcome, request: ModelRequest) -> list[str]:
    """The request's fields the provider that answered did not honour."""
    return dropped_fields(outcome.target.provider, replace(request, model=outcome.target.model))


def _prepare(
    principal: Principal, request: ChatCompletionRequest, context: CallContext
) -> tuple[Resilient, ModelRequest]:
    """The call chain and the model request (with what retrieval found, when it runs), once the
    call is admitted (budgets, rate limits)."""
    targets = registry.resolve(principal, request.model, request.provider_id, request.fallbacks)
    context.citations = rag.retrieve(
        principal, use_rag=request.use_rag, index_id=request.index_id, options=request.rag, messages=request.messages
    )
    model_request = _model_request(principal, request, context.citations)
    _check_shape(targets, model_request)
    context.user = request.user
    texts = [m.model_dump_json(exclude_none=True) for m in model_request.messages]
    context.quota = limits.admit(principal, limits.estimate(texts, request.output_limit), request.user)
    return Resilient(targets, RetryPolicy()), model_request


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
            user=context.user,
            provider=result.target.provider.name if result else None,
        ),
    )


def create(
    principal: Principal, request: ChatCompletionRequest, context: CallContext | None = None
) -> list[ReplyEvent]:
    """A buffered completion, as the events of the whole reply (parley.api.replies encodes them)."""
    context = context or CallContext()
    started = time.monotonic()
    runner, model_request = _prepare(principal, request, context)
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
    context.dropped = dropped(outcome, model_request)
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
    completion_id = new_id("chatcmpl")
    events: list[ReplyEvent] = [
        ReplyStarted(
            reply_id=completion_id,
            model=outcome.target.model,
            created=int(time.time()),
            system_fingerprint=reply.system_fingerprint,
            citations=context.citations,
        )
    ]
    if reply.content is not None:
        events.append(TextDelta(text=reply.content))
    events += [ToolCallDone(call=call) for call in reply.tool_calls]
    events += [
        Finished(reason=reply.finish_reason, usage=reply.usage, system_fingerprint=reply.system_fingerprint),
        ReplyDone(reply_id=completion_id, usage=reply.usage),
    ]
    return events


def stream(
    principal: Principal, request: ChatCompletionRequest, context: CallContext | None = None
) -> Iterator[ReplyEvent]:
    """The reply's events as the model produces them (encoded as `chat.completion.chunk` lines).

    Everything that can be refused is checked here, and the provider has produced its first
    event (after retries and fallback) before this returns: an error up to that point is an
    ordinary JSON error with its status. A failure after it ends the stream with ReplyFailed.
    The call is audited once, however the stream ends (parley.services.replies.relay).
    """
    context = context or CallContext()
    started = time.monotonic()
    runner, model_request = _prepare(principal, request, context)
    try:
        events, outcome = runner.stream(model_request)
    except ParleyError as error:
        _audit(principal, context, runner.targets[0].model, started, status=error.status, outcome="failed", error=error)
        raise
    context.dropped = dropped(outcome, model_request)
    start = ReplyStarted(
        reply_id=new_id("chatcmpl"), model=outcome.target.model, created=int(time.time()), citations=context.citations
    )

    def end(ending: Ending) -> list[ReplyEvent]:
        failure = ending.error
        _audit(
            principal,
            context,
            start.model,
            started,
            status=failure.status if failure else 200,
            outcome="failed" if failure else ("succeeded" if ending.status == "completed" else "incomplete"),
            usage=ending.usage,
            result=outcome,
            error=failure,
        )
        return [ReplyFailed.of(failure)] if failure else [ReplyDone(reply_id=start.reply_id, usage=ending.usage)]

    return relay(events, end, first=start)
