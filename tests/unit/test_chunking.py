"""The chunker: sections and heading paths, overlap, token bounds, exact spans (a property over
random texts), determinism, and the index's chunking settings."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from parley.domain.chunking import ChunkingSettings, chunk
from parley.domain.tokens import estimate_text

SENTENCES = " ".join(f"Refund rule {i} applies to orders placed before day {i}." for i in range(80))
HANDBOOK = f"""Welcome to the handbook.

# Billing

## Refunds

{SENTENCES}

```python
# a comment, not a heading
refund(order)
```

## Invoices
Invoices are sent monthly.

# Support
Write to support@example.com.
"""


def test_empty_and_blank_texts_have_no_chunks() -> None:
    assert chunk("") == []
    assert chunk(" \n\n\t ") == []
    assert chunk("", media_type="text/markdown") == []


def test_markdown_sections_are_never_spanned_and_carry_their_heading_path() -> None:
    chunks = chunk(HANDBOOK, media_type="text/markdown", max_tokens=80, overlap_tokens=20)
    headings = [c.heading for c in chunks]
    assert headings[0] is None
    assert set(headings) == {None, "Billing > Refunds", "Billing > Invoices", "Support"}
    # in document order, one run per section
    runs = [h for i, h in enumerate(headings) if i == 0 or headings[i - 1] != h]
    assert runs == [None, "Billing > Refunds", "Billing > Invoices", "Support"]
    # "# Billing" has no text of its own: it opens the Refunds section's first chunk
    first_refunds = next(c for c in chunks if c.heading == "Billing > Refunds")
    assert first_refunds.text.startswith("# Billing\n\n## Refunds")
    # no chunk reaches across a section's start; the fenced comment opens no section
    for start in (HANDBOOK.index("# Billing"), HANDBOOK.index("## Invoices"), HANDBOOK.index("# Support")):
        assert not any(c.start < start < c.end for c in chunks)
    assert any("# a comment, not a heading" in c.text for c in chunks if c.heading == "Billing > Refunds")


def test_plain_text_has_no_headings() -> None:
    assert {c.heading for c in chunk(HANDBOOK, media_type="text/plain", max_tokens=80)} == {None}


def test_chunks_overlap_by_at_most_overlap_tokens_and_stay_under_max() -> None:
    chunks = chunk(SENTENCES, max_tokens=64, overlap_tokens=16)
    assert len(chunks) > 5
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end  # overlap present
        assert estimate_text(SENTENCES[after.start : before.end]) <= 16
        assert after.end > before.end  # progress
    assert all(estimate_text(c.text) <= 64 for c in chunks)
    # a sentence-based overlap starts at a sentence
    assert all(c.text.startswith("Refund rule") for c in chunks)
    assert (
        chunk(SENTENCES, max_tokens=64, overlap_tokens=0)[1].start
        >= chunk(SENTENCES, max_tokens=64, overlap_tokens=0)[0].end
    )


def test_oversize_paragraphs_sentences_and_words_are_split() -> None:
    long_sentence = " ".join(["word"] * 500)  # no sentence end
    dense = "!" * 300  # one "word", 300 tokens
    text = f"{long_sentence}\n\n{dense}"
    chunks = chunk(text, max_tokens=64, overlap_tokens=0)
    assert all(estimate_text(c.text) <= 64 for c in chunks)
    assert "".join(c.text for c in chunks if "!" in c.text) == dense
    assert sum(c.text.count("word") for c in chunks) == 500


def test_a_custom_counter_is_respected() -> None:
    chars = len
    chunks = chunk(SENTENCES, max_tokens=200, overlap_tokens=50, count=chars)
    assert all(len(c.text) <= 200 for c in chunks)


def test_chunking_is_deterministic() -> None:
    assert chunk(HANDBOOK, media_type="text/markdown") == chunk(HANDBOOK, media_type="text/markdown")


_words = st.sampled_from(["refund", "Billing.", "a", "déjà", "日本語。", "!!", "x" * 40, "end?", "#", "##", "```"])
_lines = st.lists(_words, min_size=0, max_size=30).map(" ".join)
_texts = st.lists(
    st.one_of(
        _lines, _lines.map(lambda s: f"# {s}"), _lines.map(lambda s: f"## {s}"), st.just(""), st.text(max_size=40)
    ),
    max_size=40,
).map("\n".join)


@settings(max_examples=200, deadline=None)
@given(text=_texts, markdown=st.booleans(), max_tokens=st.integers(8, 120), overlap=st.integers(0, 60))
def test_spans_are_exact_bounded_ordered_and_cover_every_word(
    text: str, markdown: bool, max_tokens: int, overlap: int
) -> None:
    chunks = chunk(
        text, media_type="text/markdown" if markdown else "text/plain", max_tokens=max_tokens, overlap_tokens=overlap
    )
    covered = [False] * len(text)
    for i, c in enumerate(chunks):
        assert c.ordinal == i
        assert 0 <= c.start < c.end <= len(text)
        assert text[c.start : c.end] == c.text
        assert c.text == c.text.strip()
        assert estimate_text(c.text) <= max_tokens
        for k in range(c.start, c.end):
            covered[k] = True
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    assert all(covered[k] or text[k].isspace() for k in range(len(text)))


def test_chunking_settings() -> None:
    assert ChunkingSettings() == ChunkingSettings(max_tokens=400, overlap_tokens=60)
    assert ChunkingSettings(max_tokens=64, overlap_tokens=32).overlap_tokens == 32
    for bad in (
        {"max_tokens": 63},
        {"max_tokens": 2049},
        {"max_tokens": 100, "overlap_tokens": 51},
        {"overlap_tokens": -1},
        {"max_tokens": "400"},
        {"extra": 1},
    ):
        with pytest.raises(ValidationError):
            ChunkingSettings.model_validate(bad)
