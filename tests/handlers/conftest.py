"""Fixtures for the handler tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from parley.services import registry
from tests.handlers.faults import Faults, faulty_dynamodb


@pytest.fixture
def faults(aws: None) -> Iterator[Faults]:
    """The process's DynamoDB client behind a Faults wrapper (real DynamoDB's failures, on cue)."""
    with faulty_dynamodb() as wrapped:
        yield wrapped


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[str, str]]]:
    """Every prompt the echo model receives, as (role, text) pairs, plain and streamed calls alike."""
    prompts: list[list[tuple[str, str]]] = []
    for method in ("complete", "stream"):
        original = getattr(registry.EchoProvider, method)

        def spy(self: Any, request: Any, _original: Any = original) -> Any:
            prompts.append([(m.role, m.text()) for m in request.messages])
            return _original(self, request)

        monkeypatch.setattr(registry.EchoProvider, method, spy)
    return prompts
