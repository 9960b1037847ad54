"""Sending messages in a conversation, and reading its history.

A send: checks everything that can be refused; chooses the context window with bounded reads
(parley.services.context); reserves the user message and its reply placeholder in one
transaction (parley.storage.conversations); calls the model (retries and fallback before the
first token); then completes the reply, or marks it `error` (nothing produced) or `incomplete`
(partial text kept). Whatever happens after the reservation, both messages stay: never a lost
message, never a gap.

An `Idempotency-Key` is a property of the send, not of the HTTP response: the key's record is
written in the same transaction as the pair (parley.storage.conversations.append_pair), so a
retry after any failure (a 5xx, a dropped stream, a lost response) finds the pair and answers
from it: the completed reply, the stored error, or 409 `idempotency_request_in_progress` with
Retry-After while the reply is still being written. The same key with another body is 409
`idempotency_key_reused`. Nothing is stored twice and the model is called once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from parley.domain.chat import ChatMessage, ToolCall, Usage
from parley.domain.conversations import (
    ConversationRecord,
    Cost,
    HiddenContextItem,
    Message,
    MessageRecord,
    MessageSend,
    SendKeyRecord,
    SessionRecord,
)
from parley.domain.errors import Conflict, InvalidRequest, NotFound, ParleyError, stored_error
from parley.domain.ids import new_id
from parley.domain.indexes import Citation
from parley.domain.keys import Quota
from parley.domain.paging import Pages, Position
from parley.domain.principal import Principal
from parley.domain.replies import (
    ReplyDone,
    ReplyEvent,
    ReplyFailed,
    ReplyStarted,
    TextDelta,
    ToolCallDone,
    ToolResult,
)
from parley.domain.tokens import estimate_text
from parley.providers.base import ModelRequest, StreamEvent
from parley.providers.resilient import Outcome, Resilient, RetryPolicy
from parley.providers.tokenizer import count_message
from parley.services import context, documents, handoffs, limits, rag, registry
from parley.services import conversations as lifecycle
from parley.services.metering import CallRecord, call_cost, start_record_call
from parley.services.replies import Ending, relay
from parley.services.tools import CallContext, ToolRun, run_http
from parley.storage.conversations import (
    SEND_KEY_TTL,
    ConversationStore,
    DuplicateSend,
    is_stale_pending,
    message_from_item,
    retry_stale,
    send_key_sk,
)

if TYPE_CHECKING:
    from parley.domain.agents import AgentRecord

log = logging.getLogger(__name__)
ROUTE = "POST /v1/conversations/{conversation_id}/messages"
HISTORY_PAGES = Pages("messages", {"conversation_id": str, "order": str, "seq": int})
# A reply is stored up to this many UTF-8 bytes (DynamoDB items stop at 400 KB); a longer one is
# kept truncated, marked `incomplete` with code `reply_too_large`.
MAX_REPLY_BYTES = 300_000
RETRY_AFTER_SECONDS = 2


@dataclass
class Sent:
    """A send's reply, and whether it was answered from an earlier request with the same key."""

    message: Message
    replayed: bool = False
    quota: Quota | None = None  # where the send left its rate limits (None: no limits, or a replay)


@dataclass
class Streamed:
    events: Iterator[ReplyEvent]
    replayed: bool = False
    quota: Quota | None = None


@dataclass
class Totals:
    """A turn's usage and cost over its model calls (what `done` reports)."""

    usage: Usage | None = None
    cost: Decimal | None = None

    def add(self, message: Message) -> None:
        if message.usage is not None:
            before = self.usage
            self.usage = Usage.of(
                (before.prompt_tokens if before else 0) + message.usage.prompt_tokens,
                (before.completion_tokens if before else 0) + message.usage.completion_tokens,
            )
        if message.cost is not None:
            self.cost = (self.cost or Decimal(0)) + Decimal(str(message.cost.amount_usd))

    def shown(self) -> Cost | None:
        return Cost(amount_usd=float(self.cost)) if self.cost is not None else None


@dataclass
class Prepared:
    conversation: ConversationRecord
    user: MessageRecord  # what this step answers: the user's message, or the turn's first tool result
    reply: MessageRecord
    runner: Resilient
    request: ModelRequest
    request_id: str
    quota: Quota | None = None
    started: float = field(default_factory=time.monotonic)
    agent: AgentRecord | None = None
    step: int = 1  # the turn's model calls so far, this one included
    totals: Totals = field(default_factory=Totals)
    context_record: dict[str, Any] | None = None  # a later step's window, stored when it finishes
    citations: tuple[Citation, ...] = ()  # what retrieval gave this step's model call


@dataclass(frozen=True)
class Grounding:
    """A model call's messages with what retrieval found (none when the conversation has no index)."""

    messages: list[ChatMessage]
    citations: tuple[Citation, ...] = ()
    index_id: str | None = None
    tokens: int = 0  # the excerpts' estimated tokens, for admission

    def record(self, context_record: dict[str, Any]) -> dict[str, Any]:
        """The reply's stored context, with the retrieval (GET .../context shows it as last_call)."""
        if not self.citations:
            return context_record
        retrieved = [c.model_dump(mode="json", exclude_none=True) for c in self.citations]
        return {**context_record, "retrieval": {"index_id": self.index_id, "citations": retrieved}}


def _grounding(principal: Principal, settings: ConversationRecord, messages: list[ChatMessage]) -> Grounding:
    citations = rag.retrieve(
        principal, use_rag=settings.use_rag, index_id=settings.index_id, options=None, messages=messages
    )
    if not citations:
        return Grounding(list(messages))
    return Grounding(
        rag.grounded(messages, citations),
        citations,
        settings.index_id,
        estimate_text(rag.excerpt_block(citations)),
    )


def _check_sendable(record: ConversationRecord, body: MessageSend | None = None) -> None:
    if record.status == "archived":
        raise Conflict(
            "The conversation is archived and accepts no messages; unarchive it first.", code="conversation_archived"
        )
    if record.status == "handed_off":
        raise Conflict("The conversation is handed off; resolve the handoff first.", code="conversation_handed_off")
    if body is None:
        return
    awaited = (record.awaiting_tools or {}).get("call_ids") or []
    if body.tool_results is None and awaited:
        raise Conflict(
            f"The last reply waits for the results of its tool calls ({', '.join(awaited)}): post them as "
            "tool_results first.",
            code="tool_results_required",
        )
    if body.tool_results is not None:
        given = [r.tool_call_id for r in body.tool_results]
        if not awaited:
            raise Conflict("No reply of this conversation waits for tool results.", code="no_tool_calls_pending")
        if sorted(given) != sorted(awaited):
            raise InvalidRequest(
                f"tool_results must answer exactly the calls the reply made: {', '.join(awaited)}.",
                code="tool_results_mismatch",
                param="tool_results",
            )


def _targets(principal: Principal, record: ConversationRecord, session: SessionRecord | None) -> Resilient:
    """The call chain for `record`'s effective settings (lifecycle.effective: an agent's fill in)."""
    model = (session.model if session else None) or record.model
    provider_id = (session.provider_id if session else None) or record.provider_id
    # a conversation with no model in a project with no provider gets the built-in model
    return Resilient(registry.resolve(principal, model, provider_id, echo_when_unconfigured=True), RetryPolicy())


def model_for(principal: Principal, conversation_id: str) -> tuple[str, Resilient]:
    """The model (and its call chain) that answers this conversation's next message."""
    record = lifecycle.load_for_call(principal, conversation_id)  # a thread: its parent's settings
    runner = _targets(principal, lifecycle.effective(record, lifecycle.agent_of(principal, record)), None)
    return runner.targets[0].model, runner


def _tools(agent: AgentRecord | None) -> dict[str, Any]:
    """The model request's tools: the agent's."""
    if agent is None or not agent.tools:
        return {}
    return {"tools": tuple(agent.chat_tools()), "tool_choice": "auto"}


def _prepare(
    principal: Principal,
    conversation_id: str,
    body: MessageSend,
    request_id: str,
    key: str | None,
    conversations: ConversationStore,
) -> Prepared | handoffs.Diverted:
    # a thread: its parent's settings; with its pinned items, so the window is one more read
    record = lifecycle.load_for_call(principal, conversation_id, conversations, with_pinned=True)
    if body.tool_results is not None:  # a turn's tool results: never held by a handoff
        _check_sendable(record, body)
        return _prepare_results(principal, record, body, request_id, key, conversations)
    # an operator's reply, or a message while handed off to a human: stored, answered, no model call
    diverted = handoffs.divert(principal, record, body, key, _fingerprint(conversation_id, body), conversations)
    if isinstance(diverted, handoffs.Diverted):
        return diverted
    if diverted is not record:  # read again (a handoff ended meanwhile): with a thread's settings
        record = lifecycle.load_for_call(principal, conversation_id, conversations, with_pinned=True)
    _check_sendable(record, body)
    assert body.content is not None
    agent = lifecycle.agent_of(principal, record)
    settings = lifecycle.effective(record, agent)
    session = None
    if body.session_id is not None:
        session = conversations.get_session(principal.project_id, conversation_id, body.session_id)
        if session is None:
            raise InvalidRequest(
                f"No session {body.session_id!r} in this conversation.", code="session_not_found", param="session_id"
            )
    attached = [documents.text_of(principal, doc, f"attachments[{i}]") for i, doc in enumerate(body.attachments)]
    runner = _targets(principal, settings, session)
    model = runner.targets[0].model
    # The window is chosen before anything is stored: a message too large for it is refused cleanly.
    # Attachments add their documents' text to this message's model context; the stored message keeps the ids.
    model_content = body.content + "".join(f"\n\n[Attachment: {name}]\n{text}" for name, text in attached)
    built = context.build(principal, settings, model, runner, model_content, request_id=request_id, store=conversations)
    grounding = _grounding(principal, settings, built.messages)
    # admitted (budgets, rate limits) before anything is stored: a refused send stores nothing
    quota = limits.admit(principal, built.window.tokens + grounding.tokens, record.user_id)
    # the first attempt uses the record already read (at the version a summary stored on the way
    # moved it to); a retry reads again
    reads = [record.model_copy(update={"version": built.version})]

    def reserve() -> tuple[ConversationRecord, MessageRecord, MessageRecord]:
        current = reads.pop() if reads else lifecycle.load(principal, conversation_id, conversations)
        _check_sendable(current, body)
        seq, at = current.next_seq, lifecycle.now()
        user = MessageRecord(
            id=new_id("msg"),
            conversation_id=conversation_id,
            seq=seq,
            role="user",
            content=body.content,
            status="completed",
            session_id=body.session_id,
            attachments=body.attachments or None,
            tokens=built.new_tokens,
            created_at=at,
            org_id=principal.org_id,
            event_seq=current.version + 1,  # the send moves the version by 2: one per message's event
            user_id=current.user_id,
        )
        reply = MessageRecord(
            id=new_id("msg"),
            conversation_id=conversation_id,
            seq=seq + 1,
            role="assistant",
            content="",
            status="pending",
            session_id=body.session_id,
            user_message_id=user.id,
            model=model,
            context=grounding.record(built.record()),
            created_at=at,
            org_id=principal.org_id,
            event_seq=current.version + 2,
            user_id=current.user_id,
            agent_id=agent.id if agent else None,
            agent_version=agent.version if agent else None,
        )
        changes: dict[str, Any] = {
            "next_seq": seq + 2,
            "message_count": current.message_count + 2,
            "updated_at": at,
            "activity": f"{at}#{conversation_id}",
            "version": current.version + 2,
        }
        send_key = None
        # the token names this attempt (key, seq, message id): a request whose outcome is unknown is
        # resent with it and answered from the commit; another attempt is another transaction
        token = _token(principal.project_id, conversation_id, f"{key or ''}\n{user.id}", seq)
        if key is not None:
            send_key = SendKeyRecord(
                sk=send_key_sk(key),
                request_hash=_fingerprint(conversation_id, body),
                user_seq=seq,
                reply_seq=seq + 1,
                created_at=at,
                expiration=int(time.time() + SEND_KEY_TTL.total_seconds()),
            )
        conversations.append_pair(current, user, reply, changes, send_key, token)
        return current.model_copy(update=changes), user, reply

    current, user, reply = retry_stale(reserve)
    request = ModelRequest(model=model, messages=grounding.messages, **_tools(agent))
    return Prepared(
        current, user, reply, runner, request, request_id, quota, agent=agent, citations=grounding.citations
    )


def _prepare_results(
    principal: Principal,
    record: ConversationRecord,
    body: MessageSend,
    request_id: str,
    key: str | None,
    conversations: ConversationStore,
) -> Prepared:
    """A client's tool results: stored after the reply that called the tools, and the turn goes on."""
    assert body.tool_results is not None
    agent = lifecycle.agent_of(principal, record)
    awaiting = record.awaiting_tools or {}
    runs = [
        ToolRun(r.tool_call_id, str((awaiting.get("names") or {}).get(r.tool_call_id, "")), r.output, r.is_error)
        for r in body.tool_results
    ]
    prepared = _next_step(
        principal,
        record,
        agent,
        runs,
        step=int(awaiting.get("step") or 1) + 1,
        user_message_id=str(awaiting.get("user_message_id") or ""),
        request_id=request_id,
        conversations=conversations,
        fingerprint=(key, _fingerprint(record.id, body)) if key is not None else None,
        expected=awaiting.get("call_ids") or [],
    )
    assert prepared is not None  # results continue the turn (nothing is awaited while they are stored)
    return prepared


def _next_step(
    principal: Principal,
    record: ConversationRecord,
    agent: AgentRecord | None,
    runs: list[ToolRun],
    *,
    step: int,
    user_message_id: str,
    request_id: str,
    conversations: ConversationStore,
    awaiting: dict[str, Any] | None = None,
    fingerprint: tuple[str, str] | None = None,
    expected: list[str] | None = None,
) -> Prepared | None:
    """Store the tool results of a step and, unless `awaiting` (client tools still to answer),
    the placeholder of the turn's next reply, in one transaction; then the next model call's
    request (built from the stored history, tool results included)."""
    settings = lifecycle.effective(record, agent)
    runner = _targets(principal, settings, None)
    model = runner.targets[0].model
    reads = [record]

    def reserve() -> tuple[ConversationRecord, list[MessageRecord]]:
        current = reads.pop() if reads else lifecycle.load(principal, record.id, conversations)
        awaited = sorted((current.awaiting_tools or {}).get("call_ids") or [])
        if expected is not None and awaited != sorted(expected):  # a client's results: still awaited?
            raise Conflict("These tool results were already posted.", code="no_tool_calls_pending")
        if current.status != "active":
            _check_sendable(current)
        seq, at = current.next_seq, lifecycle.now()
        stored: list[MessageRecord] = [
            MessageRecord(
                id=new_id("msg"),
                conversation_id=record.id,
                seq=seq + i,
                role="tool",
                content=run.output,
                status="completed",
                tool_call_id=run.tool_call_id,
                tokens=count_message(model, run.output),
                created_at=at,
                org_id=principal.org_id,
                event_seq=current.version + 1 + i,
                user_id=current.user_id,
                **(
                    {"error": {"type": "tool_error", "code": "tool_failed", "message": run.output}}
                    if run.is_error
                    else {}
                ),
            )
            for i, run in enumerate(runs)
        ]
        if awaiting is None:
            stored.append(
                MessageRecord(
                    id=new_id("msg"),
                    conversation_id=record.id,
                    seq=seq + len(stored),
                    role="assistant",
                    content="",
                    status="pending",
                    user_message_id=user_message_id or None,
                    model=model,
                    created_at=at,
                    org_id=principal.org_id,
                    event_seq=current.version + 1 + len(stored),
                    user_id=current.user_id,
                    agent_id=agent.id if agent else None,
                    agent_version=agent.version if agent else None,
                )
            )
        changes: dict[str, Any] = {
            "next_seq": seq + len(stored),
            "message_count": current.message_count + len(stored),
            "updated_at": at,
            "activity": f"{at}#{record.id}",
            "version": current.version + len(stored),
            "awaiting_tools": awaiting,
        }
        send_key = None
        if fingerprint is not None:
            send_key = SendKeyRecord(
                sk=send_key_sk(fingerprint[0]),
                request_hash=fingerprint[1],
                user_seq=seq,
                reply_seq=seq + len(stored) - 1,
                created_at=at,
                expiration=int(time.time() + SEND_KEY_TTL.total_seconds()),
            )
        first = stored[0].id if stored else ""
        token = _token(principal.project_id, record.id, f"{fingerprint[0] if fingerprint else ''}\n{first}", seq)
        conversations.append_messages(current, stored, changes, send_key=send_key, token=token)
        return current.model_copy(update=changes), stored

    current, stored = retry_stale(reserve)
    if awaiting is not None:
        return None
    reply = stored[-1]
    # the window from what is stored now: the turn's calls and their results
    built = context.build(
        principal,
        lifecycle.effective(record.model_copy(update={"next_seq": current.next_seq}), agent),
        model,
        runner,
        None,
        request_id=request_id,
        summarize=False,
        store=conversations,
    )
    grounding = _grounding(principal, lifecycle.effective(current, agent), built.messages)
    request = ModelRequest(model=model, messages=grounding.messages, **_tools(agent))
    first = stored[0] if runs else reply
    return Prepared(
        current,
        first,
        reply,
        runner,
        request,
        request_id,
        agent=agent,
        step=step,
        context_record=grounding.record(built.record()),
        citations=grounding.citations,
    )


def _finish(
    principal: Principal,
    prepared: Prepared,
    *,
    status: Literal["completed", "error", "incomplete"],
    content: str,
    usage: Usage | None,
    outcome: Outcome | None,
    tool_calls: list[ToolCall] | None = None,
    error: ParleyError | None = None,
) -> Message:
    """Write the reply back (conditionally: a conversation deleted meanwhile gets nothing back),
    then meter the call (a call that happened is counted even if its conversation is gone)."""
    conversation_id = prepared.conversation.id
    model = outcome.target.model if outcome else prepared.request.model
    content, truncated = _bounded(content)
    if truncated and status == "completed":
        status = "incomplete"
        error = error or InvalidRequest(
            f"The reply was longer than {MAX_REPLY_BYTES:,} bytes; it is stored truncated.", code="reply_too_large"
        )
    call = CallRecord(
        route=ROUTE,
        request_id=prepared.request_id,
        model=model,
        status=error.status if error else 200,
        outcome="succeeded" if status == "completed" else ("failed" if status == "error" else "incomplete"),
        latency_ms=int((time.monotonic() - prepared.started) * 1000),
        usage=usage,
        provider_id=outcome.target.provider_id if outcome else None,
        error_code=error.code if error else None,
        resource_ids=[conversation_id, prepared.user.id, prepared.reply.id],
        tries=outcome.tries if outcome else 1,
        user=prepared.conversation.user_id,
        provider=outcome.target.provider.name if outcome else None,
    )
    cost = call_cost(call)
    fields: dict[str, Any] = {
        "content": content,
        "status": status,
        "model": model,
        "provider_id": outcome.target.provider_id if outcome else None,
        "usage": usage.model_dump(exclude_none=True) if usage else None,
        "cost_usd": str(cost) if cost is not None else None,
        "tool_calls": [t.model_dump() for t in tool_calls] if tool_calls else None,
        "error": {"type": error.type, "code": error.code, "message": error.message} if error else None,
        # the status the send answered with, so a retry with the same key answers it again
        "error_status": error.status if error else None,
        "tokens": count_message(model, spoken) if (spoken := content + _arguments(tool_calls)) else 0,
        "completed_at": lifecycle.now(),
    }
    if prepared.context_record is not None:
        fields["context"] = prepared.context_record
    # The reply's write and the metering write go out together (independent items; a call that
    # happened is counted even if its conversation is gone); both are waited for before answering.
    metered = start_record_call(principal, call)
    try:
        stored = lifecycle.store().finish_message(principal.project_id, conversation_id, prepared.reply.seq, fields)
    except BaseException:
        if (metering_error := metered.exception()) is not None:  # waits; the reply's error is the one raised
            log.error("metering failed too", exc_info=metering_error)
        raise
    metered.result()
    if not stored:
        log.info("reply not stored: its conversation is gone", extra={"conversation_id": conversation_id})
    return message_from_item(prepared.reply.model_copy(update=fields))


def _arguments(calls: list[ToolCall] | None) -> str:
    return "".join(c.function.name + c.function.arguments for c in calls or ())


def _step_limit(agent: AgentRecord) -> ParleyError:
    return Conflict(
        f"The agent reached its limit of {agent.max_tool_steps} tool steps in this turn; the tool calls of its "
        "last reply were not run. Send a new message to go on.",
        code="tool_step_limit",
    )


def _over_limit(prepared: Prepared, calls: list[ToolCall]) -> bool:
    """Whether this step's tool calls would go past the agent's step limit (they are not run)."""
    return bool(calls) and prepared.agent is not None and prepared.step > prepared.agent.max_tool_steps


def _run_tools(principal: Principal, prepared: Prepared, message: Message, calls: list[ToolCall]) -> Iterator[ToolRun]:
    """The step's http tools, run one after the other (each result as it comes); client tools
    are left to the caller."""
    agent = prepared.agent
    assert agent is not None
    secret: str | None = None
    for call in calls:
        spec = agent.tool(call.function.name)
        if spec is None:
            yield ToolRun(
                call.id, call.function.name, f"Error: the agent has no tool named {call.function.name!r}.", True
            )
        elif spec.type == "http":
            secret = secret or agents_service().signing_secret(principal, agent.id)
            where = CallContext(prepared.conversation.id, message.id, agent.id, agent.version)
            yield run_http(spec, call, secret, where)  # type: ignore[arg-type]


def _after_tools(
    principal: Principal, prepared: Prepared, message: Message, calls: list[ToolCall], runs: list[ToolRun]
) -> Prepared | None:
    """After a step's http tools ran: the turn's next step, or None when client tools remain
    (their calls are awaited: the caller posts tool_results)."""
    assert prepared.agent is not None
    done = {r.tool_call_id for r in runs}
    client = [c for c in calls if c.id not in done]
    awaiting = None
    if client:
        awaiting = {
            "reply_seq": prepared.reply.seq,
            "call_ids": [c.id for c in client],
            "names": {c.id: c.function.name for c in client},
            "step": prepared.step,
            "user_message_id": prepared.reply.user_message_id,
        }
    conversations = lifecycle.store()
    record = lifecycle.load_for_call(principal, prepared.conversation.id, conversations)
    following = _next_step(
        principal,
        record,
        prepared.agent,
        runs,
        step=prepared.step + 1,
        user_message_id=prepared.reply.user_message_id or "",
        request_id=prepared.request_id,
        conversations=conversations,
        awaiting=awaiting,
    )
    if following is not None:
        following.totals, following.quota, following.started = prepared.totals, prepared.quota, time.monotonic()
    return following


def agents_service() -> Any:
    from parley.services import agents  # noqa: PLC0415 - only agents' turns need it

    return agents


def _bounded(content: str) -> tuple[str, bool]:
    encoded = content.encode("utf-8", "replace")
    if len(encoded) <= MAX_REPLY_BYTES:
        return content, False
    return encoded[:MAX_REPLY_BYTES].decode("utf-8", "ignore"), True


def _fingerprint(conversation_id: str, body: MessageSend) -> str:
    """What must match for a retry to be the same send (`stream` may differ: a retry of a broken
    stream can ask for the buffered reply)."""
    shown: dict[str, Any] = {
        "conversation_id": conversation_id,
        "content": body.content,
        "tool_results": [r.model_dump() for r in body.tool_results] if body.tool_results else None,
        "attachments": body.attachments,
        "session_id": body.session_id,
    }
    if body.role != "user":  # an operator's reply (parley.services.handoffs)
        shown |= {"role": body.role, "author": body.author.model_dump() if body.author else None}
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode("utf-8", "replace")).hexdigest()


def _token(project_id: str, conversation_id: str, key: str, seq: int) -> str:
    """The transaction's ClientRequestToken (at most 36 characters)."""
    return hashlib.sha256(f"{project_id}\n{conversation_id}\n{key}\n{seq}".encode()).hexdigest()[:36]


def _earlier(
    principal: Principal, conversation_id: str, body: MessageSend, key: str, conversations: ConversationStore
) -> MessageRecord | None:
    """The reply item of an earlier send with this key, or None if there was none. 409 when the
    key was used for another request, or when that reply is still being written; the stored
    error when that send failed."""
    record = conversations.get_send_key(principal.project_id, conversation_id, key)
    if record is None:
        return None
    if record.request_hash != _fingerprint(conversation_id, body):
        raise Conflict("This Idempotency-Key was used with a different request.", code="idempotency_key_reused")
    reply = conversations.get_message(principal.project_id, conversation_id, record.reply_seq)
    if reply is None:
        raise NotFound(f"No conversation {conversation_id!r}.", code="conversation_not_found")
    if is_stale_pending(reply):
        settled = [reply]
        lifecycle.settle(principal, conversation_id, settled, conversations)
        reply = settled[0]
    if reply.status == "pending":
        raise _in_progress()
    if reply.status == "error":  # the send failed: its retry answers the same error
        raise _replayed_error(reply.error, reply.error_status)
    return reply


def _in_progress() -> Conflict:
    return Conflict(
        "A request with this Idempotency-Key is still running; retry shortly.",
        code="idempotency_request_in_progress",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _begin(
    principal: Principal, conversation_id: str, body: MessageSend, request_id: str, key: str | None
) -> Prepared | MessageRecord | handoffs.Diverted:
    """A new send (reserved), or the reply item of the earlier send with this key (a send that
    called no model: as handoffs.Diverted)."""
    conversations = lifecycle.store()
    if key is not None:
        earlier = _earlier(principal, conversation_id, body, key, conversations)
        if earlier is not None:
            return handoffs.replayed(earlier)
    try:
        return _prepare(principal, conversation_id, body, request_id, key, conversations)
    except DuplicateSend:  # a concurrent request with the same key stored its pair first
        assert key is not None
        earlier = _earlier(principal, conversation_id, body, key, conversations)
        if earlier is None:  # its record expired in between: a new send would be a second pair
            raise _in_progress() from None
        return handoffs.replayed(earlier)


def _replayed_error(error: dict[str, Any] | None, status: int | None) -> ParleyError:
    error = error or {}
    return stored_error(
        status or 502,
        str(error.get("type", "api_error")),
        str(error.get("code", "internal_error")),
        str(error.get("message", "")),
    )


def send(
    principal: Principal, conversation_id: str, body: MessageSend, request_id: str = "", key: str | None = None
) -> Sent | handoffs.Diverted:
    begun = _begin(principal, conversation_id, body, request_id, key)
    if isinstance(begun, handoffs.Diverted):
        return begun
    if not isinstance(begun, Prepared):
        return Sent(message_from_item(begun), replayed=True)
    prepared, quota = begun, begun.quota
    while True:
        try:
            reply, outcome = prepared.runner.complete(prepared.request)
        except ParleyError as error:
            _finish(principal, prepared, status="error", content="", usage=None, outcome=None, error=error)
            raise
        calls = list(reply.tool_calls)
        over = _over_limit(prepared, calls)
        message = _finish(
            principal,
            prepared,
            status="incomplete" if over else "completed",
            content=reply.content or "",
            usage=reply.usage,
            outcome=outcome,
            tool_calls=calls or None,
            error=_step_limit(prepared.agent) if over and prepared.agent else None,
        )
        if over or not calls or prepared.agent is None or message.status != "completed":
            return Sent(message, quota=quota)
        following = _after_tools(
            principal, prepared, message, calls, list(_run_tools(principal, prepared, message, calls))
        )
        if following is None:
            return Sent(message, quota=quota)  # it waits for the client's tool results
        prepared = following


def send_stream(
    principal: Principal, conversation_id: str, body: MessageSend, request_id: str = "", key: str | None = None
) -> Streamed | handoffs.Diverted:
    """The reply's events as the model produces them (encoded as the conversation stream:
    `start`, `text`..., `tool_call`..., then `done` or `error`).

    Refusals and a provider that fails before its first event are ordinary JSON errors (the
    reply is stored with status `error`); a failure later ends the stream with an `error` event
    and the reply keeps its partial text with status `incomplete`. A retry with the same key
    streams the stored reply the same way (one `text` event with its whole text). A send that
    calls no model (parley.services.handoffs) is answered as JSON, not streamed.
    """
    begun = _begin(principal, conversation_id, body, request_id, key)
    if isinstance(begun, handoffs.Diverted):
        return begun
    if not isinstance(begun, Prepared):
        return Streamed(_replay_stream(begun), replayed=True)
    prepared = begun
    try:
        events, outcome = prepared.runner.stream(prepared.request)
    except ParleyError as error:
        _finish(principal, prepared, status="error", content="", usage=None, outcome=None, error=error)
        raise
    return Streamed(_stream(principal, prepared, events, outcome), quota=prepared.quota)


def _started(reply: MessageRecord, conversation_id: str) -> ReplyStarted:
    created = datetime.fromisoformat(reply.created_at.replace("Z", "+00:00"))
    return ReplyStarted(
        reply_id=reply.id,
        model=reply.model or "",
        created=int(created.timestamp()),
        conversation_id=conversation_id,
        user_message_id=reply.user_message_id or "",
        citations=tuple(reply.cited()),
    )


def _replay_stream(reply: MessageRecord) -> Iterator[ReplyEvent]:
    """The stored reply as a reply stream: start, its whole text, its tool calls, then done (or
    the error it ended with)."""
    message = message_from_item(reply)
    yield _started(reply, message.conversation_id)
    if message.content:
        yield TextDelta(text=message.content)
    for call in message.tool_calls or []:
        yield ToolCallDone(call=call)
    if message.status == "completed":
        yield ReplyDone(reply_id=message.id, usage=message.usage, cost=message.cost)
    else:
        yield ReplyFailed.of(_replayed_error(reply.error, reply.error_status))


def _stream(
    principal: Principal, prepared: Prepared, events: Iterator[StreamEvent], outcome: Outcome
) -> Iterator[ReplyEvent]:
    """The turn's steps as one stream: each model call's events (each step starts with `start`,
    naming its message), the tool calls, the http tools' results as they come, and `done` with the
    turn's usage and cost (or `error`)."""
    while True:
        step: dict[str, Any] = {}
        yield from relay(
            events, _ender(principal, prepared, outcome, step), first=_started(prepared.reply, prepared.conversation.id)
        )
        if "calls" not in step:
            return
        message, calls = step["message"], step["calls"]
        runs: list[ToolRun] = []
        for run in _run_tools(principal, prepared, message, calls):
            runs.append(run)
            yield ToolResult(tool_call_id=run.tool_call_id, output=run.output, is_error=run.is_error)
        following = _after_tools(principal, prepared, message, calls, runs)
        if following is None:  # the client's tools: the turn goes on when it posts their results
            yield ReplyDone(reply_id=message.id, usage=prepared.totals.usage, cost=prepared.totals.shown())
            return
        prepared = following
        try:
            events, outcome = prepared.runner.stream(prepared.request)
        except ParleyError as error:
            _finish(principal, prepared, status="error", content="", usage=None, outcome=None, error=error)
            yield _started(prepared.reply, prepared.conversation.id)
            yield ReplyFailed.of(error)
            return


def _ender(
    principal: Principal, prepared: Prepared, outcome: Outcome, step: dict[str, Any]
) -> Callable[[Ending], list[ReplyEvent]]:
    """How one step's stream ends: stored, and either the turn's end or (`step` filled in) its tools."""

    def end(ending: Ending) -> list[ReplyEvent]:
        if ending.status == "incomplete":  # the model failed mid-way, or the client went away
            _finish(
                principal,
                prepared,
                status="incomplete",
                content=ending.text,
                usage=ending.usage,
                outcome=outcome,
                error=ending.error,
            )
            return [ReplyFailed.of(ending.error)] if ending.error else []
        calls = ending.tool_calls
        over = _over_limit(prepared, calls)
        message = _finish(
            principal,
            prepared,
            status="incomplete" if over else "completed",
            content=ending.text,
            usage=ending.usage,
            outcome=outcome,
            tool_calls=calls or None,
            error=_step_limit(prepared.agent) if over and prepared.agent else None,
        )
        prepared.totals.add(message)
        done: list[ReplyEvent] = [ToolCallDone(call=call) for call in calls]
        if over:
            done.append(ReplyFailed.of(_step_limit(prepared.agent)))  # type: ignore[arg-type]
        elif message.status != "completed":  # stored truncated: over MAX_REPLY_BYTES
            done.append(ReplyFailed.of(_replayed_error(message.error, 400)))
        elif calls and prepared.agent is not None and not ending.consumer_left:
            step.update(message=message, calls=calls)  # the turn goes on: its tools next
        else:
            done.append(ReplyDone(reply_id=message.id, usage=prepared.totals.usage, cost=prepared.totals.shown()))
        return done

    return end


def hidden_context(principal: Principal, conversation_id: str) -> list[HiddenContextItem]:
    """The injected hidden context, in injection order (only for keys allowed to read it)."""
    principal.require("conversations:ReadHiddenContext")
    hidden, _ = lifecycle.store().pinned(principal.project_id, conversation_id)
    return [HiddenContextItem.of(h) for h in hidden]


def history(
    principal: Principal,
    conversation_id: str,
    *,
    limit: int,
    order: Literal["asc", "desc"],
    position: Position | None,
    offset: int | None,
) -> tuple[list[Message], Position | None]:
    """A page of history: one read of the conversation, one range query. O(page), never O(history)."""
    if position is not None and offset is not None:
        raise InvalidRequest("Give cursor or offset, not both.", param="offset")
    conversations = lifecycle.store()
    record = lifecycle.load(principal, conversation_id, conversations)
    last_seq = record.next_seq - 1
    if position is not None:
        if position["conversation_id"] != conversation_id or position["order"] != order:
            raise InvalidRequest("This cursor belongs to another listing.", code="invalid_cursor", param="cursor")
        after = int(position["seq"])
        low, high = (after + 1, min(after + limit, last_seq)) if order == "asc" else (max(1, after - limit), after - 1)
    else:
        skip = offset or 0
        if order == "asc":
            low, high = skip + 1, min(skip + limit, last_seq)
        else:
            high = last_seq - skip
            low = max(1, high - limit + 1)
    items = conversations.message_range(principal.project_id, conversation_id, low, high, descending=order == "desc")
    lifecycle.settle(principal, conversation_id, items, conversations)
    more = high < last_seq if order == "asc" else low > 1
    after_page = {"conversation_id": conversation_id, "order": order, "seq": items[-1].seq} if more and items else None
    return [message_from_item(i) for i in items], after_page
