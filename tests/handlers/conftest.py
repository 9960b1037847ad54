"""Fixtures for the handler tests."""

from __future__ import annotations

from typing import Any

import pytest

from parley.providers import registry


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
