"""Chunking a document for a knowledge index: pure, deterministic, token-aware, with overlap.

`chunk(text, media_type=..., max_tokens=..., overlap_tokens=...)` cuts a text into chunks of at
most `max_tokens` tokens (as `count` counts them: Parley's estimate by default, or any counter,
e.g. the embedding model's own), each an exact span of the original: `text[start:end] ==
chunk.text`, so a search hit can point back into its document.

- **Sections.** In `text/markdown`, ATX headings (`#` to `######`, outside fenced code blocks)
  open sections, and a chunk never spans two sections; each chunk carries its heading path
  (`"Billing > Refunds"`). A heading with no text of its own before the next heading is kept
  with that next section (so `# Billing` directly over `## Refunds` is not a chunk of its own).
  Other media types are one section without a heading.
- **Pieces.** A section is cut at blank lines (paragraphs); a paragraph over `max_tokens` at
  sentence ends; a sentence over it between words; a word over it (a long token-dense run)
  into slices. Pieces are then packed greedily into chunks up to `max_tokens`.
- **Overlap.** A chunk after the first of its section starts with the last words of the one
  before, up to `overlap_tokens` (never reaching into another section), unless that overlap and
  the chunk's first piece would not fit together.
- Whitespace between chunks belongs to no chunk; chunks come in document order, `ordinal` 0, 1...
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from parley.domain.tokens import estimate_text

Counter = Callable[[str], int]

DEFAULT_MAX_TOKENS = 400
DEFAULT_OVERLAP_TOKENS = 60
MIN_MAX_TOKENS = 64
MAX_MAX_TOKENS = 2048

_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```+|~~~+)")
_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")
# A sentence ends at ., ! or ? (and their CJK forms), with closing quotes or brackets, before whitespace.
_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f]+[\"'\u201d\u2019)\]]*(?=\s)|[\u3002\uff01\uff1f]")
_WORD = re.compile(r"\S+")


class ChunkingSettings(BaseModel):
    """How an index cuts its documents."""

    model_config = ConfigDict(strict=True, extra="forbid")

    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, ge=MIN_MAX_TOKENS, le=MAX_MAX_TOKENS)
    overlap_tokens: int = Field(default=DEFAULT_OVERLAP_TOKENS, ge=0, description="at most half of max_tokens")

    @model_validator(mode="after")
    def _overlap_fits(self) -> Self:
        if self.overlap_tokens > self.max_tokens // 2:
            raise ValueError(
                f"overlap_tokens must be at most half of max_tokens ({self.max_tokens // 2}), not {self.overlap_tokens}"
            )
        return self


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    text: str  # == the document's text[start:end]
    start: int
    end: int
    heading: str | None = None  # the heading path in text/markdown, "Billing > Refunds"


@dataclass(frozen=True)
class _Section:
    start: int
    end: int
    heading: str | None


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    tokens: int


def chunk(
    text: str,
    *,
    media_type: str = "text/plain",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    count: Counter = estimate_text,
) -> list[Chunk]:
    """The chunks of `text` (none for a text that is empty or only whitespace)."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    overlap_tokens = max(0, min(overlap_tokens, max_tokens // 2))
    sections = _markdown_sections(text) if media_type == "text/markdown" else [_Section(0, len(text), None)]
    spans: list[tuple[int, int, str | None]] = []
    for section in sections:
        pieces = _pieces(text, section.start, section.end, max_tokens, count)
        spans += [(s, e, section.heading) for s, e in _pack(text, pieces, max_tokens, overlap_tokens, count)]
    return [Chunk(i, text[s:e], s, e, heading) for i, (s, e, heading) in enumerate(spans)]


# --- sections --------------------------------------------------------------------------------


def _markdown_sections(text: str) -> list[_Section]:
    headings: list[tuple[int, int, str]] = []  # (offset of the line, level, title)
    fence: str | None = None
    offset = 0
    for line in text.splitlines(keepends=True):
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
        elif opened:
            fence = opened.group(1)
        else:
            found = _HEADING.match(line.rstrip("\r\n"))
            if found:
                headings.append((offset, len(found.group(1)), found.group(2).strip()))
        offset += len(line)
    bounds = [0, *(h[0] for h in headings), len(text)]
    sections: list[_Section] = []
    path: list[tuple[int, str]] = []
    pending: int | None = None  # the start of heading-only sections kept for the next one
    for index in range(len(bounds) - 1):
        start, end = bounds[index], bounds[index + 1]
        if index > 0:
            _, level, title = headings[index - 1]
            path = [(lv, t) for lv, t in path if lv < level] + [(level, title)]
        heading = " > ".join(t for _, t in path if t) or None
        body_start = text.find("\n", start, end) + 1 if index > 0 else start
        has_body = index == 0 or (body_start > 0 and text[body_start:end].strip() != "")
        if not has_body and index < len(bounds) - 2:
            pending = start if pending is None else pending
            continue
        sections.append(_Section(pending if pending is not None else start, end, heading))
        pending = None
    return sections


# --- pieces ----------------------------------------------------------------------------------


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _pieces(text: str, start: int, end: int, max_tokens: int, count: Counter) -> list[_Piece]:
    """Paragraphs, else sentences, else runs of words, else slices: each at most max_tokens."""
    pieces: list[_Piece] = []
    position = start
    for gap in [*_BLANK_LINES.finditer(text, start, end), None]:
        p_start, p_end = _trimmed(text, position, gap.start() if gap else end)
        if gap is not None:
            position = gap.end()
        if p_start == p_end:
            continue
        tokens = count(text[p_start:p_end])
        if tokens <= max_tokens:
            pieces.append(_Piece(p_start, p_end, tokens))
            continue
        for s_start, s_end in _sentences(text, p_start, p_end):
            tokens = count(text[s_start:s_end])
            if tokens <= max_tokens:
                pieces.append(_Piece(s_start, s_end, tokens))
            else:
                pieces += _word_runs(text, s_start, s_end, max_tokens, count)
    return pieces


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    position = start
    for stop in _SENTENCE_END.finditer(text, start, end):
        s, e = _trimmed(text, position, stop.end())
        if s < e:
            spans.append((s, e))
        position = stop.end()
    s, e = _trimmed(text, position, end)
    if s < e:
        spans.append((s, e))
    return spans


def _word_runs(text: str, start: int, end: int, max_tokens: int, count: Counter) -> list[_Piece]:
    runs: list[_Piece] = []
    run_start = run_end = -1
    run_tokens = 0
    for word in _WORD.finditer(text, start, end):
        tokens = count(word.group())
        if tokens > max_tokens:
            if run_start >= 0:
                runs.append(_Piece(run_start, run_end, run_tokens))
                run_start = -1
            runs += _slices(text, word.start(), word.end(), max_tokens, count)
            continue
        if run_start >= 0 and run_tokens + tokens <= max_tokens:
            joined = count(text[run_start : word.end()])
            if joined <= max_tokens:
                run_end, run_tokens = word.end(), joined
                continue
        if run_start >= 0:
            runs.append(_Piece(run_start, run_end, run_tokens))
        run_start, run_end, run_tokens = word.start(), word.end(), tokens
    if run_start >= 0:
        runs.append(_Piece(run_start, run_end, run_tokens))
    return runs


def _slices(text: str, start: int, end: int, max_tokens: int, count: Counter) -> list[_Piece]:
    """A run without whitespace that is over max_tokens, cut into the longest slices that fit."""
    slices: list[_Piece] = []
    position = start
    while position < end:
        # The longest end in [low, high] whose slice fits: gallop to a window that does not fit
        # (so each probe reads about a slice's length, not the rest of the run), then bisect.
        low, step = position + 1, max_tokens
        while low + step < end and count(text[position : low + step]) <= max_tokens:
            low, step = low + step, step * 2
        high = min(end, low + step)
        while low < high:
            middle = (low + high + 1) // 2
            if count(text[position:middle]) <= max_tokens:
                low = middle
            else:
                high = middle - 1
        slices.append(_Piece(position, low, count(text[position:low])))
        position = low
    return slices


# --- packing ---------------------------------------------------------------------------------


def _overlap_start(text: str, start: int, end: int, overlap_tokens: int, count: Counter) -> int:
    """Where the last words of text[start:end] worth at most overlap_tokens begin (end: none)."""
    if overlap_tokens <= 0:
        return end
    words = list(_WORD.finditer(text, start, end))
    begin = end
    used = 0
    for word in reversed(words[1:]):  # never the whole chunk
        used += count(word.group())
        if used > overlap_tokens:
            break
        begin = word.start()
    # Start at a sentence when one starts inside the overlap, rather than mid-sentence.
    stop = _SENTENCE_END.search(text, begin, end)
    if stop is not None and begin > start:
        sentence, _ = _trimmed(text, stop.end(), end)
        if sentence < end:
            return sentence
    return begin


def _pack(
    text: str, pieces: list[_Piece], max_tokens: int, overlap_tokens: int, count: Counter
) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(pieces):
        start = pieces[i].start
        tokens = 0
        if spans:
            carried = _overlap_start(text, spans[-1][0], spans[-1][1], overlap_tokens, count)
            if carried < spans[-1][1]:
                carried_tokens = count(text[carried : pieces[i].start])
                if carried_tokens + pieces[i].tokens <= max_tokens:
                    start, tokens = carried, carried_tokens
        end = pieces[i].end
        tokens += pieces[i].tokens
        j = i + 1
        while j < len(pieces):
            gap = count(text[pieces[j - 1].end : pieces[j].start])
            if tokens + gap + pieces[j].tokens > max_tokens:
                break
            tokens += gap + pieces[j].tokens
            end = pieces[j].end
            j += 1
        # The sum is exact for counters that count whitespace-separated parts independently (the
        # estimate); check the span itself for any other counter, and give back pieces if needed.
        while count(text[start:end]) > max_tokens:
            if j - 1 > i:
                j -= 1
                end = pieces[j - 1].end
            elif start < pieces[i].start:
                start = pieces[i].start
            else:
                break  # a single piece, which fits by construction
        spans.append((start, end))
        i = j
    return spans
