"""OpenAI's Responses API on Parley's own conversations.

A stored response is an exchange in a Parley conversation: its input items are appended as
messages (user and assistant messages, `function_call` items as assistant tool calls,
`function_call_output` items as tool messages), followed by the reply placeholder, in one
transaction with the response's record (parley.storage.responses), exactly as a send reserves
its pair; the model call then finishes the reply. So:

- a response without `conversation` or `previous_response_id` starts a conversation of its own
  (created implicitly; deleted with the response when nothing else was added to it);
- `conversation` appends to that conversation, whose history (with its context management:
  sliding window, summaries, hidden context) is the model's context;
- `previous_response_id` continues the previous response's conversation. It must be the newest
  exchange there (409 `response_not_latest` otherwise): continuing from an older response would
  fork the history, which Parley conversations model as threads; this route does not fork.
- `store: false` writes nothing (a later `previous_response_id` to it is 404, as on OpenAI) but
  still reads the conversation or previous response it continues.

System and developer input items and `instructions` apply to their own call only: they are kept
in the response record (for input_items), not as conversation messages.

`background: true`: the response is stored `queued` and answered at once; its generation runs
after the answer is sent, in the same invocation (parley.api.app.after_response: on Lambda before
the runtime asks for its next invocation, bounded by the function's timeout; locally in the same
execution environment). `cancel` moves a queued or in-progress background response to
`cancelled` (conditionally: a response that finished first stays finished, and a finished one is
a 400); the generation checks for it between the model's events and stops, keeping what was
produced (the reply message is `incomplete` with code `cancelled`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from parley.domain.chat import (
    ChatMessage,
    FunctionCall,
    FunctionDefinition,
    ImagePart,
    ImageUrl,
    NamedFunction,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)
from parley.domain.chat import ToolChoiceFunction as ChatToolChoice
from parley.domain.context import Turn as ContextTurn
from parley.domain.conversations import ConversationRecord, MessageRecord
from parley.domain.errors import Conflict, InvalidRequest, NotFound, ParleyError
from parley.domain.ids import new_id
from parley.domain.keys import Quota
from parley.domain.principal import Principal
from parley.domain.replies import ReplyDone, ReplyEvent, ReplyFailed, ReplyStarted
from parley.domain.responses import (
    IGNORED_FIELDS,
    FormatJsonObject,
    FormatJsonSchema,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputImage,
    InputItemList,
    InputText,
    MessageItem,
    OutputText,
    ResponseCreate,
    ResponseDeleted,
    ResponseObject,
    ResponseRecord,
    ResponseStatus,
    ResponseToolChoiceFunction,
    ToolChoiceAllowed,
    error_of,
    function_item_id,
    output_items,
    status_of,
    usage_of,
)
from parley.providers.base import ModelRequest, dropped_fields
from parley.providers.resilient import Outcome, Resilient, RetryPolicy
from parley.providers.tokenizer import count_message
from parley.services import context, limits, registry
from parley.services import conversations as lifecycle
from parley.services.metering import CallRecord, call_cost, record_call
from parley.services.replies import Ending, relay
from parley.storage.conversations import ConversationStore, list_keys, message_from_item, retry_stale
from parley.storage.responses import ResponseStore

ROUTE = "POST /v1/responses"
# The model port's field names as the Responses API names them (for parley-dropped-params).
RESPONSES_NAMES = {
    "max_tokens": "max_output_tokens",
    "response_format": "text",
    "reasoning_effort": "reasoning",
    "verbosity": "text",
}
# Responses fields passed on as the Chat Completions field of the same name (ModelRequest.options):
# each provider honours, maps or drops it as it does for completions.
FORWARDED = ("service_tier", "prompt_cache_key", "prompt_cache_retention", "safety_identifier")
CANCELLED = {"type": "api_error", "code": "cancelled", "message": "The response was cancelled."}
# A background generation reads its response's status (one GetItem) at most this often, to stop
# when it was cancelled.
CANCEL_CHECK_SECONDS = 1.0


def responses_store() -> ResponseStore:
    return ResponseStore()


@dataclass
class CallContext:
    request_id: str = ""
    quota: Quota | None = None  # set by the service: where the call left its rate limits
    dropped: list[str] = field(default_factory=list)  # set by the service


@dataclass
class Turn:
    """An input item (or a run of function_call items) as a conversation message."""

    role: Literal["user", "assistant", "tool"]
    text: str
    model_content: str | list[TextPart | ImagePart]
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None

    def message(self) -> ChatMessage:
        if self.role == "tool":
            return ChatMessage(role="tool", content=self.text, tool_call_id=self.tool_call_id)
        if self.role == "assistant":
            if not self.tool_calls:
                return ChatMessage(role="assistant", content=self.text)
            return ChatMessage(role="assistant", content=self.text or None, tool_calls=self.tool_calls)
        content: Any = self.model_content  # a list of text and image parts is a ChatMessage's content
        return ChatMessage(role="user", content=content)

    def listed(self) -> int:
        """How many input items this message lists as (input_items)."""
        return (1 if self.text or not self.tool_calls else 0) + len(self.tool_calls)


@dataclass
class Plan:
    body: ResponseCreate
    response_id: str
    created_at: int
    runner: Resilient
    request: ModelRequest
    turns: list[Turn]
    system_items: list[dict[str, Any]]
    record: ConversationRecord | None  # the conversation continued (None: a new one, or none)
    previous: ResponseRecord | None
    built: context.Built | None
    started: float = field(default_factory=time.monotonic)


@dataclass
class Reserved:
    """What a stored response wrote before its model call (None values for store: false)."""

    record: ResponseRecord
    reply: MessageRecord | None


@dataclass
class Streamed:
    skeleton: ResponseObject
    events: Iterator[ReplyEvent]
    final: list[ResponseObject] = field(default_factory=list)  # set when the stream ends


# ---------------------------------------------------------------- input


def _image(part: InputImage, param: str) -> ImagePart:
    if not part.image_url:
        raise InvalidRequest(
            "input_image needs image_url (a URL or a data: URL); file_id is not available.",
            code="unsupported_content_part",
            param=param,
        )
    detail = part.detail if part.detail in ("auto", "low", "high") else None
    return ImagePart(type="image_url", image_url=ImageUrl(url=part.image_url, detail=detail))


def _turns(body: ResponseCreate) -> tuple[list[ChatMessage], list[Turn], list[dict[str, Any]]]:
    return turns_of(body.items())


def turns_of(
    items: Sequence[MessageItem | FunctionCallItem | FunctionCallOutputItem], name: str = "input"
) -> tuple[list[ChatMessage], list[Turn], list[dict[str, Any]]]:
    """Input items as the model's new messages, the messages to store, and the system items
    (`name`: the request field the items came in, for the errors' `param`)."""
    model: list[ChatMessage] = []
    turns: list[Turn] = []
    system: list[dict[str, Any]] = []
    listed = 0
    last_was_call = False
    for i, item in enumerate(items):
        param = f"{name}[{i}]"
        if isinstance(item, MessageItem):
            last_was_call = False
            if "input_file" in item.part_types():
                raise InvalidRequest(
                    f"{param} has an input_file content part, which Parley's providers cannot take.",
                    code="unsupported_content_part",
                    param=f"{param}.content",
                )
            if item.role in ("system", "developer"):
                system.append({"index": listed, "role": item.role, "text": item.text()})
                model.append(ChatMessage(role=item.role, content=item.text()))
                continue
            content: str | list[TextPart | ImagePart] = item.text()
            if item.role == "user" and isinstance(item.content, list) and "input_image" in item.part_types():
                content = []
                for j, part in enumerate(item.content):
                    if isinstance(part, InputImage):
                        content.append(_image(part, f"{param}.content[{j}]"))
                    elif isinstance(part, InputText | OutputText) and part.text:
                        content.append(TextPart(type="text", text=part.text))
            turn = Turn(item.role, item.text(), content)  # type: ignore[arg-type]
        elif isinstance(item, FunctionCallItem):
            call = ToolCall(id=item.call_id, function=FunctionCall(name=item.name, arguments=item.arguments))
            previous = turns[-1] if turns else None
            # a run of calls (and the assistant text right before them) is one assistant message
            if (
                previous is not None
                and previous.role == "assistant"
                and (last_was_call or not previous.tool_calls)
                and model
                and model[-1].role == "assistant"
            ):
                previous.tool_calls.append(call)
                model[-1] = previous.message()
                listed += 1
                last_was_call = True
                continue
            turn = Turn("assistant", "", "", [call])
            last_was_call = True
        else:
            assert isinstance(item, FunctionCallOutputItem)
            last_was_call = False
            turn = Turn("tool", item.text(), item.text(), tool_call_id=item.call_id)
        turns.append(turn)
        model.append(turn.message())
        listed += turn.listed()
    return model, turns, system


def _tools(body: ResponseCreate) -> tuple[list[Tool], str | ChatToolChoice | None]:
    tools = [
        Tool(
            type="function",
            function=FunctionDefinition(
                name=t.name, description=t.description, parameters=t.parameters, strict=t.strict
            ),
        )
        for t in body.tools or ()
    ]
    choice = body.tool_choice
    if isinstance(choice, ResponseToolChoiceFunction):
        if choice.name not in {t.function.name for t in tools}:
            raise InvalidRequest(
                f"tool_choice names {choice.name!r}, which is not among the tools.", param="tool_choice"
            )
        return tools, ChatToolChoice(type="function", function=NamedFunction(name=choice.name))
    if isinstance(choice, ToolChoiceAllowed):
        allowed = {str(t.get("name")) for t in choice.tools if t.get("type") == "function"}
        return [t for t in tools if t.function.name in allowed], choice.mode
    return tools, choice


def _format(body: ResponseCreate) -> ResponseFormat | None:
    fmt = body.text.format if body.text else None
    if isinstance(fmt, FormatJsonSchema):
        schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema_}
        if fmt.strict is not None:
            schema["strict"] = fmt.strict
        if fmt.description is not None:
            schema["description"] = fmt.description
        return ResponseFormat(type="json_schema", json_schema=schema)
    if isinstance(fmt, FormatJsonObject):
        return ResponseFormat(type="json_object")
    return None


def _options(body: ResponseCreate) -> dict[str, Any]:
    options: dict[str, Any] = {n: getattr(body, n) for n in FORWARDED if getattr(body, n) is not None}
    effort = (body.reasoning or {}).get("effort")
    if effort is not None:
        options["reasoning_effort"] = effort
    if body.text is not None and body.text.verbosity is not None:
        options["verbosity"] = body.text.verbosity
    return options


def _refuse_unsupported(body: ResponseCreate) -> None:
    if body.background and body.stream:
        raise InvalidRequest(
            "background with stream is not available: create the background response, then poll it "
            "(GET /v1/responses/{id}); or stream it in the foreground.",
            code="unsupported_parameter",
            param="background",
        )
    if body.background and not body.wants_store():
        raise InvalidRequest("background responses must be stored (store: true).", param="store")
    if body.prompt is not None:
        raise InvalidRequest(
            "Prompt templates (prompt) are not available; send input and instructions.",
            code="unsupported_parameter",
            param="prompt",
        )
    if body.top_logprobs:
        raise InvalidRequest(
            "top_logprobs is not available: Parley's replies carry no log probabilities.",
            code="unsupported_parameter",
            param="top_logprobs",
        )


# ---------------------------------------------------------------- the plan


def _check_open(record: ConversationRecord) -> None:
    if record.status == "archived":
        raise Conflict("The conversation is archived; unarchive it first.", code="conversation_archived")
    if record.status == "handed_off":
        raise Conflict("The conversation is handed off; resolve the handoff first.", code="conversation_handed_off")
    if (record.awaiting_tools or {}).get("call_ids"):
        raise Conflict(
            "The conversation's agent waits for tool results (POST .../messages with tool_results).",
            code="tool_results_required",
        )


def _previous_not_found(response_id: str) -> NotFound:
    return NotFound(
        f"Previous response with id {response_id!r} not found.",
        code="previous_response_not_found",
        param="previous_response_id",
    )


def _continued(
    principal: Principal, body: ResponseCreate, conversations: ConversationStore
) -> tuple[ConversationRecord | None, ResponseRecord | None]:
    if body.previous_response_id is not None:
        previous = responses_store().get(principal.project_id, body.previous_response_id)
        if previous is None:
            raise _previous_not_found(body.previous_response_id)
        try:
            record = lifecycle.load_for_call(principal, previous.conversation_id, conversations)
        except NotFound:
            raise _previous_not_found(body.previous_response_id) from None
        if previous.status in ("in_progress", "queued"):
            raise Conflict("The previous response is still in progress.", code="previous_response_in_progress")
        if record.next_seq - 1 != previous.reply_seq:
            raise Conflict(
                "The previous response is not the newest exchange of its conversation; continue from the newest "
                f"one, or use conversation={record.id!r}.",
                code="response_not_latest",
            )
        return record, previous
    conversation_id = body.conversation_id()
    if conversation_id is None:
        return None, None
    try:
        return lifecycle.load_for_call(principal, conversation_id, conversations), None
    except NotFound:
        raise NotFound(
            f"No conversation {conversation_id!r}.", code="conversation_not_found", param="conversation"
        ) from None


def _plan(principal: Principal, body: ResponseCreate, ctx: CallContext, conversations: ConversationStore) -> Plan:
    _refuse_unsupported(body)
    new_messages, turns, system = _turns(body)
    record, previous = _continued(principal, body, conversations)
    if record is not None and body.wants_store():
        _check_open(record)
    settings = lifecycle.effective(record, lifecycle.agent_of(principal, record)) if record is not None else None
    model_name = body.model or (settings.model if settings else None)
    provider_id = settings.provider_id if settings is not None and body.model is None else None
    runner = Resilient(registry.resolve(principal, model_name, provider_id, echo_when_unconfigured=True), RetryPolicy())
    model = runner.targets[0].model
    built = None
    messages: list[ChatMessage]
    if settings is not None:
        # the history's window, then the new items (system/developer items go first, with the
        # conversation's own system messages)
        new_text = "\n".join(m.text() for m in new_messages) if new_messages else None
        pending = [
            (ContextTurn(settings.next_seq + i, t.role, t.text, 0, tuple(t.tool_calls), t.tool_call_id), t.message())
            for i, t in enumerate(turns)
        ]
        built = context.build(
            principal,
            settings,
            model,
            runner,
            new_text,
            request_id=ctx.request_id,
            store=conversations,
            new_turns=pending,
        )
        leading = next((i for i, m in enumerate(built.messages) if m.role != "system"), len(built.messages))
        systems = [m for m in new_messages if m.role in ("system", "developer")]
        messages = built.messages[:leading] + systems + built.messages[leading:]
    else:
        messages = list(new_messages)
    if body.instructions:
        messages.insert(0, ChatMessage(role="system", content=body.instructions))
    if not any(m.role not in ("system", "developer") for m in messages):
        raise InvalidRequest("Give input (a string, or a list of input items).", param="input")
    tools, tool_choice = _tools(body)
    request = ModelRequest(
        model=model,
        messages=messages,
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=body.max_output_tokens,
        tools=tools,
        tool_choice=tool_choice if tools or tool_choice == "none" else None,
        response_format=_format(body),
        user=body.user,
        parallel_tool_calls=body.parallel_tool_calls,
        options=_options(body),
    )
    tokens = built.window.tokens if built is not None else 0
    if built is None:
        tokens = limits.estimate([m.model_dump_json(exclude_none=True) for m in messages], body.max_output_tokens)
    ctx.quota = limits.admit(principal, tokens, body.user)
    return Plan(
        body=body,
        response_id=new_id("resp"),
        created_at=int(time.time()),
        runner=runner,
        request=request,
        turns=turns,
        system_items=system,
        record=record,
        previous=previous,
        built=built,
    )


def _settings(body: ResponseCreate) -> dict[str, Any]:
    """The request's fields a response echoes."""
    tool_choice: Any = body.tool_choice or "auto"
    if not isinstance(tool_choice, str):
        tool_choice = tool_choice.model_dump(exclude_none=True)
    fmt = body.text.format if body.text else None
    return {
        "instructions": body.instructions,
        "metadata": body.metadata or {},
        "tools": [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
                "strict": t.strict,
            }
            for t in body.tools or ()
        ],
        "tool_choice": tool_choice,
        "parallel_tool_calls": body.parallel_tool_calls if body.parallel_tool_calls is not None else True,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "max_output_tokens": body.max_output_tokens,
        "text": {"format": fmt.model_dump(by_alias=True, exclude_none=True) if fmt else {"type": "text"}},
        "truncation": body.truncation or "disabled",
        "user": body.user,
        "safety_identifier": body.safety_identifier,
        "store": body.wants_store(),
        "conversation": body.conversation_id(),
        "background": bool(body.background),
    }


# ---------------------------------------------------------------- storing


def _token(*parts: object) -> str:
    return hashlib.sha256("\n".join(str(p) for p in parts).encode()).hexdigest()[:36]


def _new_conversation(principal: Principal, conversations: ConversationStore) -> ConversationRecord:
    conversation_id, at = new_id("conv"), lifecycle.now()
    record = ConversationRecord(
        id=conversation_id,
        project_id=principal.project_id,
        org_id=principal.org_id,
        metadata={"created_by": "responses"},
        created_at=at,
        updated_at=at,
        activity=f"{at}#{conversation_id}",
        **list_keys(principal.project_id, None, "active"),
    )
    conversations.put_new(record)
    return record


def _reserve(
    principal: Principal, plan: Plan, conversations: ConversationStore, status: ResponseStatus = "in_progress"
) -> Reserved:
    """Store the input messages, the reply placeholder and the response record in one transaction."""
    model = plan.request.model
    owns = plan.record is None
    start = plan.record or _new_conversation(principal, conversations)
    reads = [start.model_copy(update={"version": plan.built.version})] if plan.built is not None else [start]
    previous = plan.previous

    def reserve() -> Reserved:
        current = reads.pop() if reads else lifecycle.load(principal, start.id, conversations)
        _check_open(current)
        if previous is not None and current.next_seq - 1 != previous.reply_seq:
            raise Conflict("Another exchange was added to the conversation meanwhile.", code="response_not_latest")
        seq, at = current.next_seq, lifecycle.now()
        stored = [
            MessageRecord(
                id=new_id("msg"),
                conversation_id=start.id,
                seq=seq + i,
                role=turn.role,
                content=turn.text,
                status="completed",
                tool_calls=[c.model_dump() for c in turn.tool_calls] or None,
                tool_call_id=turn.tool_call_id,
                tokens=count_message(model, turn.text + "".join(c.function.arguments for c in turn.tool_calls)),
                created_at=at,
                org_id=principal.org_id,
                event_seq=current.version + 1 + i,
                user_id=current.user_id,
            )
            for i, turn in enumerate(plan.turns)
        ]
        users = [m.id for m in stored if m.role == "user"]
        reply = MessageRecord(
            id=new_id("msg"),
            conversation_id=start.id,
            seq=seq + len(stored),
            role="assistant",
            content="",
            status="pending",
            user_message_id=users[-1] if users else None,
            model=model,
            context=plan.built.record() if plan.built is not None else None,
            created_at=at,
            org_id=principal.org_id,
            event_seq=current.version + 1 + len(stored),
            user_id=current.user_id,
        )
        record = ResponseRecord(
            id=plan.response_id,
            project_id=principal.project_id,
            conversation_id=start.id,
            owns_conversation=owns,
            first_seq=seq,
            reply_seq=reply.seq,
            reply_id=reply.id,
            created_at=plan.created_at,
            model=model,
            status=status,
            previous_response_id=plan.body.previous_response_id,
            system_items=plan.system_items,
            settings=_settings(plan.body),
        )
        count = len(stored) + 1
        changes: dict[str, Any] = {
            "next_seq": seq + count,
            "message_count": current.message_count + count,
            "updated_at": at,
            "activity": f"{at}#{start.id}",
            "version": current.version + count,
        }
        conversations.append_messages(
            current,
            [*stored, reply],
            changes,
            token=_token(principal.project_id, start.id, plan.response_id, seq),
            extra=[ResponseStore.item(record)],
        )
        return Reserved(record, reply)

    result: Reserved = retry_stale(reserve)
    return result


def _unstored(principal: Principal, plan: Plan) -> Reserved:
    record = ResponseRecord(
        id=plan.response_id,
        project_id=principal.project_id,
        conversation_id=plan.record.id if plan.record else "",
        first_seq=0,
        reply_seq=0,
        reply_id=new_id("msg"),
        created_at=plan.created_at,
        model=plan.request.model,
        previous_response_id=plan.body.previous_response_id,
        system_items=plan.system_items,
        settings=_settings(plan.body),
    )
    return Reserved(record, None)


def _finish(
    principal: Principal,
    plan: Plan,
    reserved: Reserved,
    ctx: CallContext,
    *,
    text: str,
    calls: list[ToolCall],
    usage: Usage | None,
    finish_reason: str | None,
    outcome: Outcome | None,
    error: ParleyError | None = None,
    partial: bool = False,
    cancelled: bool = False,
) -> ResponseObject:
    """Write the reply and the response's status back (conditionally), meter the call, and
    answer the finished response."""
    record, reply = reserved.record, reserved.reply
    model = outcome.target.model if outcome else plan.request.model
    status: ResponseStatus
    incomplete = None
    if cancelled:
        status, error = "cancelled", None
    elif error is not None:
        status = "failed"
    elif partial:
        status, incomplete = "incomplete", {"reason": "interrupted"}
    else:
        status, incomplete = status_of(finish_reason)
    call = CallRecord(
        route=ROUTE,
        request_id=ctx.request_id,
        model=model,
        status=error.status if error else 200,
        outcome="succeeded" if status == "completed" else ("failed" if status == "failed" else "incomplete"),
        latency_ms=int((time.monotonic() - plan.started) * 1000),
        usage=usage,
        provider_id=outcome.target.provider_id if outcome else None,
        error_code=error.code if error else None,
        resource_ids=[record.id, *([record.conversation_id] if reply is not None else [])],
        tries=outcome.tries if outcome else 1,
        user=plan.body.user,
    )
    error_field = error_of(error.status, error.message) if error else None
    finished = record.model_copy(
        update={
            "status": status,
            "model": model,
            "usage": usage.model_dump(exclude_none=True) if usage else None,
            "finish_reason": finish_reason,
            "error": error_field,
            "completed_at": int(time.time()),
        }
    )
    if reply is not None:
        cost = call_cost(call)
        message_status = "completed" if status in ("completed", "incomplete") and not partial else "incomplete"
        if error is not None and not text and not calls:
            message_status = "error"
        stored_error = {"type": error.type, "code": error.code, "message": error.message} if error else None
        if cancelled:
            stored_error = CANCELLED
        spoken = text + "".join(c.function.name + c.function.arguments for c in calls)
        store = lifecycle.store()
        store.finish_message(
            principal.project_id,
            record.conversation_id,
            reply.seq,
            {
                "content": text,
                "status": message_status,
                "model": model,
                "provider_id": outcome.target.provider_id if outcome else None,
                "usage": usage.model_dump(exclude_none=True) if usage else None,
                "cost_usd": str(cost) if cost is not None else None,
                "tool_calls": [c.model_dump() for c in calls] or None,
                "error": stored_error,
                "error_status": error.status if error else None,
                "tokens": count_message(model, spoken) if spoken else 0,
                "completed_at": lifecycle.now(),
            },
        )
        responses_store().finish(
            principal.project_id,
            record.id,
            {
                "status": status,
                "model": model,
                "usage": finished.usage,
                "finish_reason": finish_reason,
                "error": error_field,
                "completed_at": finished.completed_at,
            },
        )
    record_call(principal, call)
    return _view(finished, text, calls, incomplete)


def _view(
    record: ResponseRecord, text: str | None, calls: list[ToolCall], incomplete: dict[str, str] | None = None
) -> ResponseObject:
    settings = record.settings
    usage = Usage.model_validate(record.usage) if record.usage else None
    if incomplete is None and record.status == "incomplete":
        incomplete = status_of(record.finish_reason)[1] or {"reason": "interrupted"}
    conversation = settings.get("conversation")
    return ResponseObject(
        id=record.id,
        created_at=record.created_at,
        status=record.status,
        model=record.model,
        output=output_items(record.reply_id, text, calls, record.status),
        error=record.error,
        incomplete_details=incomplete,
        instructions=settings.get("instructions"),
        metadata=settings.get("metadata") or {},
        tools=settings.get("tools") or [],
        tool_choice=settings.get("tool_choice") or "auto",
        parallel_tool_calls=settings.get("parallel_tool_calls", True),
        temperature=settings.get("temperature"),
        top_p=settings.get("top_p"),
        max_output_tokens=settings.get("max_output_tokens"),
        previous_response_id=record.previous_response_id,
        conversation={"id": conversation} if conversation else None,
        usage=usage_of(usage),
        store=settings.get("store", True),
        background=bool(settings.get("background", False)),
        text=settings.get("text") or {"format": {"type": "text"}},
        truncation=settings.get("truncation") or "disabled",
        user=settings.get("user"),
        safety_identifier=settings.get("safety_identifier"),
        completed_at=record.completed_at,
    )


def _dropped(plan: Plan, outcome: Outcome) -> list[str]:
    names = [RESPONSES_NAMES.get(n, n) for n in dropped_fields(outcome.target.provider, plan.request)]
    body = plan.body
    names += [n for n in IGNORED_FIELDS if getattr(body, n) not in (None, [], {})]
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------- the routes


def create(principal: Principal, body: ResponseCreate, ctx: CallContext | None = None) -> ResponseObject:
    """A response, buffered: the whole reply, stored (unless store: false)."""
    ctx = ctx or CallContext()
    conversations = lifecycle.store()
    plan = _plan(principal, body, ctx, conversations)
    reserved = _reserve(principal, plan, conversations) if body.wants_store() else _unstored(principal, plan)
    try:
        reply, outcome = plan.runner.complete(plan.request)
    except ParleyError as error:
        _finish(
            principal, plan, reserved, ctx, text="", calls=[], usage=None, finish_reason=None, outcome=None, error=error
        )
        raise
    ctx.dropped = _dropped(plan, outcome)
    return _finish(
        principal,
        plan,
        reserved,
        ctx,
        text=reply.content or "",
        calls=list(reply.tool_calls),
        usage=reply.usage,
        finish_reason=reply.finish_reason,
        outcome=outcome,
    )


def stream(principal: Principal, body: ResponseCreate, ctx: CallContext | None = None) -> Streamed:
    """A response as the model produces it: refusals and a provider failing before its first event
    are JSON errors; a failure later ends the stream with `response.failed`."""
    ctx = ctx or CallContext()
    conversations = lifecycle.store()
    plan = _plan(principal, body, ctx, conversations)
    reserved = _reserve(principal, plan, conversations) if body.wants_store() else _unstored(principal, plan)
    try:
        events, outcome = plan.runner.stream(plan.request)
    except ParleyError as error:
        _finish(
            principal, plan, reserved, ctx, text="", calls=[], usage=None, finish_reason=None, outcome=None, error=error
        )
        raise
    ctx.dropped = _dropped(plan, outcome)
    skeleton = _view(reserved.record, None, [])
    streamed = Streamed(skeleton, iter(()))
    start = ReplyStarted(reply_id=reserved.record.reply_id, model=outcome.target.model, created=plan.created_at)

    def end(ending: Ending) -> list[ReplyEvent]:
        final = _finish(
            principal,
            plan,
            reserved,
            ctx,
            text=ending.text,
            calls=ending.tool_calls,
            usage=ending.usage,
            finish_reason=ending.finish_reason,
            outcome=outcome,
            error=ending.error,
            partial=ending.status == "incomplete" and ending.error is None,
        )
        streamed.final.append(final)
        if ending.error is not None:
            return [ReplyFailed.of(ending.error)]
        return [ReplyDone(reply_id=start.reply_id, usage=ending.usage)]

    streamed.events = relay(events, end, first=start)
    return streamed


def start_background(
    principal: Principal, body: ResponseCreate, ctx: CallContext | None = None
) -> tuple[ResponseObject, Callable[[], None]]:
    """A background response: stored `queued` now, and the task that generates it (to run once
    the answer is sent)."""
    ctx = ctx or CallContext()
    conversations = lifecycle.store()
    plan = _plan(principal, body, ctx, conversations)
    reserved = _reserve(principal, plan, conversations, status="queued")
    return _view(reserved.record, None, []), lambda: _generate(principal, plan, reserved, ctx)


def _is_cancelled(principal: Principal, response_id: str) -> bool:
    record = responses_store().get(principal.project_id, response_id)
    return record is None or record.status == "cancelled"


def _generate(principal: Principal, plan: Plan, reserved: Reserved, ctx: CallContext) -> None:
    """A background response's generation: in_progress, the model's stream (stopping when the
    response is cancelled), then finished as a foreground one is."""
    record = reserved.record
    plan.started = time.monotonic()
    running = responses_store().finish(principal.project_id, record.id, {"status": "in_progress"}, expected=("queued",))
    if not running:  # cancelled while queued: the reply is written back, nothing is called
        _finish(
            principal,
            plan,
            reserved,
            ctx,
            text="",
            calls=[],
            usage=None,
            finish_reason=None,
            outcome=None,
            cancelled=True,
        )
        return
    reserved.record = record.model_copy(update={"status": "in_progress"})
    try:
        events, outcome = plan.runner.stream(plan.request)
    except ParleyError as error:
        _finish(
            principal, plan, reserved, ctx, text="", calls=[], usage=None, finish_reason=None, outcome=None, error=error
        )
        return
    stopped = False

    def end(ending: Ending) -> list[ReplyEvent]:
        cancelled = stopped or _is_cancelled(principal, record.id)
        _finish(
            principal,
            plan,
            reserved,
            ctx,
            text=ending.text,
            calls=[] if cancelled else ending.tool_calls,
            usage=ending.usage,
            finish_reason=ending.finish_reason,
            outcome=outcome,
            error=ending.error,
            partial=ending.status == "incomplete" and ending.error is None,
            cancelled=cancelled,
        )
        return []

    start = ReplyStarted(reply_id=record.reply_id, model=outcome.target.model, created=plan.created_at)
    relayed = relay(events, end, first=start)
    checked = time.monotonic()
    try:
        for _ in relayed:
            if time.monotonic() - checked >= CANCEL_CHECK_SECONDS:
                checked = time.monotonic()
                if _is_cancelled(principal, record.id):
                    stopped = True
                    break
    finally:
        close = getattr(relayed, "close", None)
        if close is not None:
            close()  # a stop: the relay ends the reply with what was produced


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id {response_id!r} not found.", code="response_not_found")


def _load(principal: Principal, response_id: str) -> tuple[ResponseRecord, ConversationRecord]:
    record = responses_store().get(principal.project_id, response_id) if response_id.startswith("resp_") else None
    if record is None:
        raise _not_found(response_id)
    try:
        conversation = lifecycle.load(principal, record.conversation_id)
    except NotFound:  # its conversation was deleted: so is the response
        raise _not_found(response_id) from None
    return record, conversation


def retrieve(principal: Principal, response_id: str) -> ResponseObject:
    record, _ = _load(principal, response_id)
    conversations = lifecycle.store()
    reply = conversations.get_message(principal.project_id, record.conversation_id, record.reply_seq)
    if reply is None:
        raise _not_found(response_id)
    settled = [reply]
    lifecycle.settle(principal, record.conversation_id, settled, conversations)
    message = message_from_item(settled[0])
    if record.status in ("in_progress", "queued") and message.status != "pending":
        # the invocation ended between writing the reply and the record
        state: ResponseStatus = {"error": "failed", "incomplete": "incomplete"}.get(message.status, "completed")  # type: ignore[assignment]
        record = record.model_copy(update={"status": state})
    return _view(record, message.content, list(message.tool_calls or []))


def delete(principal: Principal, response_id: str) -> ResponseDeleted:
    """Delete the response; its messages stay in the conversation (later responses' history),
    unless the conversation was created for it and holds nothing else: then it goes too."""
    record, conversation = _load(principal, response_id)
    if not responses_store().delete(principal.project_id, response_id):
        raise _not_found(response_id)
    if record.owns_conversation and record.first_seq == 1 and conversation.next_seq - 1 == record.reply_seq:
        lifecycle.delete(principal, conversation.id)
    return ResponseDeleted(id=response_id)


def cancel(principal: Principal, response_id: str) -> ResponseObject:
    """Cancel a queued or in-progress background response (a cancelled one answers as it is); a
    synchronous or finished response is a 400, as on OpenAI."""
    record, _ = _load(principal, response_id)
    if not record.settings.get("background"):
        raise InvalidRequest("Cannot cancel a synchronous response.")
    if record.status in ("queued", "in_progress"):
        responses_store().finish(
            principal.project_id, response_id, {"status": "cancelled", "completed_at": int(time.time())}
        )
        record, _ = _load(principal, response_id)  # cancelled, or what finished first
    if record.status != "cancelled":
        raise InvalidRequest(f"Cannot cancel a response whose status is {record.status}.")
    return retrieve(principal, response_id)


def _items_of(message: MessageRecord) -> list[dict[str, Any]]:
    """A stored input message as the input items it was."""
    status = "completed"
    if message.role == "tool":
        return [
            {
                "id": f"fco_{message.id.split('_', 1)[-1]}",
                "type": "function_call_output",
                "call_id": message.tool_call_id or "",
                "output": message.content,
                "status": status,
            }
        ]
    items: list[dict[str, Any]] = []
    calls = [ToolCall(**c) for c in message.tool_calls or ()]
    if message.role == "user":
        items.append(
            {
                "id": message.id,
                "type": "message",
                "role": "user",
                "status": status,
                "content": [{"type": "input_text", "text": message.content}],
            }
        )
    elif message.content or not calls:
        items.append(
            {
                "id": message.id,
                "type": "message",
                "role": "assistant",
                "status": status,
                "content": [{"type": "output_text", "text": message.content, "annotations": [], "logprobs": []}],
            }
        )
    items += [
        {
            "id": function_item_id(message.id, i),
            "type": "function_call",
            "call_id": c.id,
            "name": c.function.name,
            "arguments": c.function.arguments,
            "status": status,
        }
        for i, c in enumerate(calls)
    ]
    return items


def input_items(
    principal: Principal, response_id: str, *, limit: int, order: Literal["asc", "desc"], after: str | None
) -> InputItemList:
    """The response's input items (OpenAI's list: first_id, last_id, has_more), bounded by the
    response's own input (at most MAX_INPUT_ITEMS messages)."""
    record, _ = _load(principal, response_id)
    conversations = lifecycle.store()
    items: list[dict[str, Any]] = []
    if record.reply_seq > record.first_seq:
        stored = conversations.message_range(
            principal.project_id, record.conversation_id, record.first_seq, record.reply_seq - 1, descending=False
        )
        for message in stored:
            items += _items_of(message)
    for n, system in enumerate(sorted(record.system_items, key=lambda s: int(s["index"]))):
        items.insert(
            int(system["index"]) + n,
            {
                "id": f"{record.id}_sys{n}",
                "type": "message",
                "role": system["role"],
                "status": "completed",
                "content": [{"type": "input_text", "text": system["text"]}],
            },
        )
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [i["id"] for i in items]
        if after not in ids:
            raise InvalidRequest(f"No input item {after!r} in this response.", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return InputItemList(
        data=page,
        first_id=page[0]["id"] if page else None,
        last_id=page[-1]["id"] if page else None,
        has_more=len(items) > limit,
    )
