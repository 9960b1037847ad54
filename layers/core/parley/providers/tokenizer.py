"""Token counts for context budgeting: exact for OpenAI-family models, an estimate otherwise.

- OpenAI-family models are counted exactly with tiktoken (`o200k_base` for gpt-4o, gpt-4.1,
  gpt-5 and the o-series; `cl100k_base` for gpt-4 and gpt-3.5), using the encodings shipped in
  parley/providers/bpe (no download: see its README).
- Other models (Anthropic, Bedrock, echo, ...) use parley.domain.tokens' estimate: one token per
  word and per punctuation mark. Providers do not publish offline tokenizers for them; metering
  always uses the usage the provider reports, and tests compare the estimate with it.
- Chat framing follows OpenAI's: 3 tokens per message and 3 to prime the reply.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any, Protocol

from parley.domain.tokens import PER_MESSAGE, REPLY_PRIMING, estimate_text

_ENCODINGS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}
_O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4")
# The embedding models text-embedding-3-* and ada-002 use cl100k_base too (tiktoken's model table).
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002")
_lock = threading.Lock()

# Context window sizes (tokens) by model family prefix; the default max_tokens of a conversation
# is the window less what the reply may need.
CONTEXT_WINDOWS: tuple[tuple[str, int], ...] = (
    ("gpt-4.1", 1_047_576),
    ("gpt-5", 400_000),
    ("gpt-4o", 128_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("gpt-4", 8_192),
    ("gpt-3.5", 16_385),
    ("claude", 200_000),
    ("anthropic.claude", 200_000),
    ("amazon.nova", 300_000),
    ("echo", 8_192),
)
DEFAULT_CONTEXT_WINDOW = 32_768


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


def _model_name(model: str) -> str:
    name = model.rsplit("/", 1)[-1]
    for prefix in ("us.", "eu.", "apac.", "global."):
        name = name.removeprefix(prefix)
    return name


def encoding_name(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI-family model, or None (then counts are estimates)."""
    name = _model_name(model)
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return None


def _seed_cache() -> None:
    """Put the shipped encodings where tiktoken looks (its cache, keyed by the URL's sha1)."""
    directory = os.environ.get("TIKTOKEN_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "parley-tiktoken")
    os.environ["TIKTOKEN_CACHE_DIR"] = directory
    os.makedirs(directory, exist_ok=True)
    data = resources.files("parley.providers") / "bpe"
    for name, url in _ENCODINGS.items():
        target = os.path.join(directory, hashlib.sha1(url.encode()).hexdigest())  # noqa: S324 - tiktoken's cache key
        if not os.path.exists(target):
            temporary = f"{target}.{os.getpid()}.tmp"
            with open(temporary, "wb") as out:
                out.write(gzip.decompress((data / f"{name}.tiktoken.gz").read_bytes()))
            os.replace(temporary, target)


@cache
def _encoding(name: str) -> _Encoding:
    with _lock:
        _seed_cache()
        import tiktoken  # noqa: PLC0415 - loaded only when an OpenAI-family model is counted

        encoding: Any = tiktoken.get_encoding(name)  # verifies the file's SHA-256
        return encoding  # type: ignore[no-any-return]


def count_text(model: str, text: str) -> int:
    name = encoding_name(model)
    if name is None:
        return estimate_text(text)
    return len(_encoding(name).encode_ordinary(text))


def count_message(model: str, text: str) -> int:
    """A chat message's tokens, framing included."""
    return PER_MESSAGE + count_text(model, text)


def count_messages(model: str, texts: Iterable[str]) -> int:
    """A whole prompt: each message with its framing, and the reply priming."""
    return sum(count_message(model, t) for t in texts) + REPLY_PRIMING


def is_exact(model: str) -> bool:
    return encoding_name(model) is not None


def context_window(model: str) -> int:
    name = _model_name(model)
    for prefix, size in CONTEXT_WINDOWS:
        if name.startswith(prefix):
            return size
    return DEFAULT_CONTEXT_WINDOW


def default_max_tokens(model: str) -> int:
    """The context budget a conversation gets when it sets none: the window less room for the reply."""
    window = context_window(model)
    return window - min(4_096, window // 4)


class TokenOutOfRange(ValueError):
    """A token id that the encoding does not have."""


def decode(model: str, ids: list[int]) -> str:
    """Text from token ids, with the model's encoding (cl100k_base for models that have none: what
    OpenAI clients such as LangChain's tokenize with). Bytes that do not end a UTF-8 character
    come out as U+FFFD."""
    encoding: Any = _encoding(encoding_name(model) or "cl100k_base")
    vocabulary = int(encoding.n_vocab)
    for token in ids:
        if not 0 <= token < vocabulary:
            raise TokenOutOfRange(f"token id {token} is not in the encoding (0 to {vocabulary - 1})")
    try:
        return str(encoding.decode(ids, errors="replace"))
    except KeyError as exc:  # an id inside the range that the encoding leaves unassigned
        raise TokenOutOfRange(f"a token id is not in the encoding ({exc.args[0] if exc.args else exc})") from None
