"""The built-in echo model: a real provider with no network, the local default.

Its reply is the text of the last user message, verbatim, so tests can predict it. It honours
`max_tokens` (cut, finish_reason "length") and `stop` (cut before the first stop sequence),
reports usage from the token estimate, and streams word by word, pausing
PARLEY_ECHO_DELAY_MS between words so streaming can be observed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence

from parley.domain.chat import FinishReason, Usage
from parley.domain.tokens import estimate_messages, estimate_text
from parley.providers.base import Finish, ModelReply, ModelRequest, StreamEvent, TextDelta
from parley.settings import get_settings

_WORD = re.compile(r"\s*\S+")


class EchoProvider:
    name = "echo"

    def __init__(self, delay_ms: int | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self._delay_ms = delay_ms
        self._sleep = sleep

    def models(self) -> Sequence[str]:
        return ("echo",)

    def _reply(self, request: ModelRequest) -> tuple[list[str], FinishReason, Usage]:
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
        prompt = estimate_messages(m.text() for m in request.messages)
        completion = estimate_text("".join(words))
        return (
            words,
            finish,
            Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion),
        )

    def complete(self, request: ModelRequest) -> ModelReply:
        words, finish, usage = self._reply(request)
        return ModelReply(content="".join(words), finish_reason=finish, usage=usage)

    def stream(self, request: ModelRequest) -> Iterator[StreamEvent]:
        words, finish, usage = self._reply(request)
        delay = (self._delay_ms if self._delay_ms is not None else get_settings().echo_delay_ms) / 1000
        for i, word in enumerate(words):
            if i and delay:
                self._sleep(delay)
            yield TextDelta(word)
        yield Finish(finish, usage)
