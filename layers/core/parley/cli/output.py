"""What the CLI writes: human tables and summaries, or with --json the API's JSON as is.

Everything goes through Output, which masks the API key wherever it would appear, so no
command, error or traceback can print it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

MASK = "***"
# Shorter "keys" are not masked: replacing every "a" of the output would help no one.
_MIN_SECRET_LENGTH = 8
_MAX_CELL = 48


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
    text = " ".join(text.split())  # one line per row
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


class Output:
    def __init__(self, stdout: TextIO, stderr: TextIO, *, json_mode: bool = False, secrets: Iterable[str] = ()) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.json_mode = json_mode
        self._secrets = tuple(secret for secret in secrets if len(secret) >= _MIN_SECRET_LENGTH)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def write(self, text: str) -> None:
        self.stdout.write(self.redact(text))

    def line(self, text: str = "") -> None:
        self.write(text + "\n")

    def delta(self, text: str) -> None:
        """A piece of a streamed reply, shown at once."""
        self.write(text)
        self.stdout.flush()

    def error(self, text: str) -> None:
        self.stderr.write(self.redact(f"error: {text}\n"))
        self.stderr.flush()

    def note(self, text: str) -> None:
        """A hint for people (stderr, so stdout stays the command's result)."""
        self.stderr.write(self.redact(text + "\n"))

    def json(self, document: object) -> None:
        self.line(json.dumps(document, indent=2, ensure_ascii=False))

    def table(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
        cells = [[_cell(row.get(column)) for column in columns] for row in rows]
        header = [column.upper() for column in columns]
        widths = [max(len(text) for text in column) for column in zip(header, *cells, strict=False)]
        for values in (header, *cells):
            self.line("  ".join(text.ljust(width) for text, width in zip(values, widths, strict=True)).rstrip())

    def fields(self, document: Mapping[str, Any], order: Sequence[str] = ()) -> None:
        """`name: value` lines, the given fields first, then the rest (multi-line values kept whole)."""
        names = [name for name in order if name in document]
        names += [name for name in document if name not in names]
        width = max((len(name) for name in names), default=0)
        for name in names:
            value = document[name]
            if value is None:
                text = "-"
            elif isinstance(value, str):
                text = value
            else:
                text = json.dumps(value, ensure_ascii=False)
            text = text.replace("\n", "\n" + " " * (width + 2))
            self.line(f"{name + ':':<{width + 1}} {text}")
