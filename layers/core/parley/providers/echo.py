"""The built-in echo model: a real provider with no network, the local default.

Its reply is the text of the last user message, verbatim, so tests can predict it. It honours
`max_tokens` (cut, finish_reason "length") and `stop` (cut before the first stop sequence),
reports usage from the token estimate, and streams word by word, pausing
PARLEY_ECHO_DELAY_MS between words so streaming can be observed.

Tools, deterministically: when tools are offered (and tool_choice is not "none") and the last
message is the user's, it calls a tool with arguments `{"input": <that message's text>}`: the one
tool_choice names, else the first tool the text names as `@<tool name>` (so a user picks it:
"@lookup_order where is 42?"), else the first tool. When the last message is a tool result, it
replies with that result's text, unless the text names a tool as `@<tool name>`: then it calls
that tool (with the result as input), so a tool can chain another, or loop up to a step limit.
A client's tool round trip and an agent's http tools thus run locally end to end.

Of OpenAI's request fields it honours those that shape its deterministic reply (max_tokens, stop,
tools, tool_choice); the others (sampling, seeds, OpenAI's own options) are dropped and named in
the `parley-dropped-params` header. It takes text and image parts (an image is not echoed) and
refuses audio and file parts.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence

from parley.domain.chat import FinishReason, FunctionCall, ToolCall, ToolChoiceFunction, Usage
from parley.domain.errors import InvalidRequest
from parley.domain.tokens import estimate_messages, estimate_text
from parley.providers.base import Finish, ModelReply, ModelRequest, StreamEvent, TextDelta, ToolCallDelta
from parley.settings import get_settings

_WORD = re.compile(r"\s*\S+")
_HONOURED = frozenset({"max_tokens", "stop", "tools", "tool_choice"})
_PARTS = frozenset({"text", "image_url", "refusal"})


def _check_parts(request: ModelRequest) -> None:
    for i, message in enumerate(request.messages):
        refused = sorted(message.part_types() - _PARTS)
        if refused:
            raise InvalidRequest(
                f"messages[{i}] has a {refused[0]} content part, which the echo provider cannot take.",
                code="unsupported_content_part",
                param=f"messages[{i}].content",
            )


class EchoProvider:
    name = "echo"

    def __init__(self, delay_ms: int | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self._delay_ms = delay_ms
        self._sleep = sleep

    def models(self) -> Sequence[str]:
        return ("echo",)

    def honours(self, request: ModelRequest) -> frozenset[str]:
        return _HONOURED

    @staticmethod
    def _tool_call(request: ModelRequest) -> ToolCall | None:
        last = request.messages[-1] if request.messages else None
        if not request.tools or request.tool_choice == "none" or last is None or last.role not in ("user", "tool"):
            return None
        offered = [t.function.name for t in request.tools]
        mentioned = [n for n in offered if f"@{n}" in last.text()]
        if last.role == "tool" and not mentioned:
            return None  # a tool's result is answered, unless it names a tool to call next
        if isinstance(request.tool_choice, ToolChoiceFunction):
            name = request.tool_choice.function.name
        else:
            name = mentioned[0] if mentioned else offered[0]
        arguments = json.dumps({"input": last.text()})
        call_id = "call_" + hashlib.sha256(f"{name}:{arguments}".encode()).hexdigest()[:24]
        return ToolCall(id=call_id, function=FunctionCall(name=name, arguments=arguments))

    def _prompt_tokens(self, request: ModelRequest) -> int:
        return estimate_messages(m.text() for m in request.messages)

    def _reply(self, request: ModelRequest) -> tuple[list[str], FinishReason, Usage]:
        last = request.messages[-1] if request.messages else None
        if last is not None and last.role == "tool":
            source = last.text()
        else:
            source = next((m.text() for m in reversed(request.messages) if m.role == "user"), "")
        finish: FinishReason = "stop"
        for stop in request.stop:
            if stop and stop in source:
                source = source[: source.index(stop)]
        words = _WORD.findall(source)
        if request.max_tokens is not None:
            kept, count = [], 0
            for word in words:
                count += estimate_text(word)
                if count > request.max_tokens:
                    finish = "length"
                    break
                kept.append(word)
            words = kept
        if words:
            words[0] = words[0].lstrip()
        prompt = self._prompt_tokens(request)
        completion = estimate_text("".join(words))
        return (
            words,
            finish,
            Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion),
        )

    def complete(self, request: ModelRequest) -> ModelReply:
        _check_parts(request)
        call = self._tool_call(request)
        if call is not None:
            usage = Usage.of(self._prompt_tokens(request), estimate_text(call.function.arguments))
            return ModelReply(content=None, finish_reason="tool_calls", usage=usage, tool_calls=(call,))
        words, finish, usage = self._reply(request)
        return ModelReply(content="".join(words), finish_reason=finish, usage=usage)

    def stream(self, request: ModelRequest) -> Iterator[StreamEvent]:
        _check_parts(request)
        call = self._tool_call(request)
        if call is not None:
            arguments = call.function.arguments
            half = len(arguments) // 2
            yield ToolCallDelta(0, id=call.id, name=call.function.name)
            yield ToolCallDelta(0, arguments=arguments[:half])
            yield ToolCallDelta(0, arguments=arguments[half:])
            yield Finish("tool_calls", Usage.of(self._prompt_tokens(request), estimate_text(arguments)))
            return
        words, finish, usage = self._reply(request)
        delay = (self._delay_ms if self._delay_ms is not None else get_settings().echo_delay_ms) / 1000
        for i, word in enumerate(words):
            if i and delay:
                self._sleep(delay)
            yield TextDelta(word)
        yield Finish(finish, usage)
