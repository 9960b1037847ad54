"""The event catalogue's files (events/schemas, events/examples) are the models', and every
example validates against its schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from parley.domain.events import TYPES, matches

ROOT = Path(__file__).resolve().parents[2]


def schema_of(kind: str) -> Draft202012Validator:
    schema = json.loads((ROOT / "events" / "schemas" / f"{kind}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_the_files_are_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, "events/make_event_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("kind", TYPES)
def test_each_example_validates_against_its_schema_and_no_other_type(kind: str) -> None:
    example: dict[str, Any] = json.loads((ROOT / "events" / "examples" / f"{kind}.json").read_text())
    schema_of(kind).validate(example)
    assert not schema_of(kind).is_valid({**example, "type": "chat.something_else"})
    assert not schema_of(kind).is_valid({**example, "surprise": 1})  # envelopes are closed
    without_data = {k: v for k, v in example.items() if k != "data"}
    assert not schema_of(kind).is_valid(without_data)


def test_event_type_filters() -> None:
    assert matches("*", "chat.message_sent")
    assert matches("chat.*", "chat.message_sent")
    assert not matches("chat.*", "webhook.test")
    assert matches("chat.message_sent", "chat.message_sent")
    assert not matches("chat.message", "chat.message_sent")
