"""Token estimates for models whose provider reports none (the echo model).

An estimate, documented as such: one token per word and per punctuation mark, plus OpenAI's
chat framing overhead (3 tokens per message, 3 to prime the reply). Metering always uses the
usage a provider reports; exact counting for OpenAI-family models comes with tiktoken.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN = re.compile(r"\w+|[^\w\s]")
PER_MESSAGE = 3
REPLY_PRIMING = 3


def estimate_text(text: str) -> int:
    return len(_TOKEN.findall(text))


def estimate_messages(texts: Iterable[str]) -> int:
    return sum(PER_MESSAGE + estimate_text(t) for t in texts) + REPLY_PRIMING
