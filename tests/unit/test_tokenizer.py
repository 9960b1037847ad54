"""Exact counts for OpenAI-family models (tiktoken with the shipped encodings), estimates otherwise."""

from __future__ import annotations

import pytest

from parley.domain.tokens import estimate_text
from parley.providers.tokenizer import (
    context_window,
    count_message,
    count_messages,
    count_text,
    default_max_tokens,
    encoding_name,
    is_exact,
)


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1-2025-04-14", "o200k_base"),
        ("openai/gpt-5", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("claude-3-5-sonnet", None),
        ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", None),
        ("echo", None),
    ],
)
def test_encodings_by_model(model: str, encoding: str | None) -> None:
    assert encoding_name(model) == encoding
    assert is_exact(model) is (encoding is not None)


def test_exact_counts_come_from_the_published_encodings() -> None:
    from parley.providers.tokenizer import _encoding

    # tiktoken's README example: cl100k_base encodes "hello world" as [15339, 1917]
    assert _encoding("cl100k_base").encode_ordinary("hello world") == [15339, 1917]
    assert count_text("gpt-4", "hello world") == 2
    assert count_text("gpt-4o", "") == 0
    assert count_text("gpt-4o", "hello world") == len(_encoding("o200k_base").encode_ordinary("hello world"))
    long_word = "antidisestablishmentarianism"
    assert count_text("gpt-4o", long_word) > 1  # sub-word pieces, not one token per word
    assert estimate_text(long_word) == 1


def test_estimates_and_framing() -> None:
    assert count_text("claude-3-5-haiku", "Hello, world!") == estimate_text("Hello, world!") == 4
    assert count_message("echo", "a b") == 3 + 2
    assert count_messages("echo", ["a b", "c"]) == (3 + 2) + (3 + 1) + 3


def test_context_windows_and_default_budgets() -> None:
    assert context_window("gpt-4o-mini") == 128_000
    assert context_window("anthropic.claude-3-haiku") == 200_000
    assert context_window("some-local-model") == 32_768
    assert default_max_tokens("gpt-4o") == 128_000 - 4_096
    assert default_max_tokens("echo") == 8_192 - 2_048
