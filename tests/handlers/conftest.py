"""Fixtures for the handler tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from parley.aws import clients
from parley.runtime.pipeline import Pipeline
from parley.services import registry
from parley.settings import get_settings
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


@pytest.fixture
def pipeline(aws: None, load_handler: Any, lambda_context: Any, route_table: Any) -> Pipeline:
    """The route table's stream consumers (the event emitter, the search indexer) fed from moto's
    streams as Lambda feeds them: `pipeline.drain()` delivers what is committed so far."""

    def invoke(function: str, event: dict[str, Any], timeout: float) -> Any:
        return load_handler(function)(event, lambda_context)

    streams = tuple(c for c in route_table.consumers if c.kind == "stream")
    return Pipeline(streams, invoke, clients(), get_settings(), backoff_seconds=0.0)
