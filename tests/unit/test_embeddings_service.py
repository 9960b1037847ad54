"""The embeddings service: batches of the adapter's limit, retries with backoff (never of a
rejected request), metering of what was embedded even when a later batch fails, and `local`
only in local mode."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from parley.domain.errors import InvalidRequest, ProviderError, ProviderRejected
from parley.domain.principal import Principal
from parley.providers.embeddings import EmbeddingReply, EmbeddingRequest, InputLimit
from parley.services import embeddings
from parley.services.completions import CallContext
from parley.services.metering import usage_report
from parley.settings import get_settings, set_settings

CALLER = Principal("org_s", "proj_s", "key_s", ("*",))


class Fake:
    name = "fake"

    def __init__(self, batch: int, failures: Sequence[ProviderError | None] = ()) -> None:
        self.batch = batch
        self.failures = list(failures)
        self.calls: list[EmbeddingRequest] = []

    def batch_limit(self, model: str) -> int:
        return self.batch

    def input_limit(self, model: str) -> InputLimit:
        return InputLimit(max_chars=20)

    def count_tokens(self, model: str, text: str) -> int:
        return len(text)

    def embed(self, request: EmbeddingRequest) -> EmbeddingReply:
        self.calls.append(request)
        if self.failures:
            failure = self.failures.pop(0)
            if failure is not None:
                raise failure
        return EmbeddingReply([[float(len(t))] for t in request.inputs], sum(len(t) for t in request.inputs), "fake-1")


@pytest.fixture
def fake(aws: None, monkeypatch: pytest.MonkeyPatch) -> Fake:
    provider = Fake(batch=2)
    monkeypatch.setattr(
        embeddings, "resolve", lambda principal, model, provider_id=None: embeddings.EmbeddingTarget(provider, model)
    )
    return provider


def test_inputs_go_in_batches_and_come_back_in_order(fake: Fake) -> None:
    vectors, usage, model = embeddings.embed(CALLER, "fake-1", ["a", "bb", "ccc", "dddd", "e"], input_type="query")
    assert vectors == [[1.0], [2.0], [3.0], [4.0], [1.0]]
    assert [list(c.inputs) for c in fake.calls] == [["a", "bb"], ["ccc", "dddd"], ["e"]]
    assert all(c.input_type == "query" for c in fake.calls)
    assert (usage.prompt_tokens, usage.completion_tokens, model) == (11, 0, "fake-1")


def test_retryable_failures_are_retried_with_backoff_and_rejections_are_not(fake: Fake) -> None:
    waits: list[float] = []
    fake.failures = [ProviderError("down", retryable=True), None, ProviderError("down", retryable=True)]
    context = CallContext(route=embeddings.ROUTE)
    vectors, _, _ = embeddings.embed(CALLER, "m", ["a", "b", "c"], context=context, sleep=waits.append, rng=lambda: 1.0)
    assert len(vectors) == 3
    assert len(fake.calls) == 4  # each batch failed once, then answered
    assert waits == [0.5, 0.5]
    fake.calls.clear()
    fake.failures = [ProviderRejected("no")]
    with pytest.raises(ProviderRejected):
        embeddings.embed(CALLER, "m", ["a"], sleep=waits.append)
    assert len(fake.calls) == 1


def test_a_failed_later_batch_still_meters_what_was_embedded(fake: Fake) -> None:
    fake.failures = [None, ProviderError("gone", retryable=False)]
    with pytest.raises(ProviderError):
        embeddings.embed(CALLER, "m", ["aa", "bb", "cc"])
    report = usage_report(CALLER, None, None, "model")
    (row,) = report.data
    assert (row.requests, row.failed_requests, row.prompt_tokens) == (1, 1, 4)


def test_inputs_over_the_models_limit_are_refused_before_any_call(fake: Fake) -> None:
    with pytest.raises(InvalidRequest) as caught:
        embeddings.embed(CALLER, "m", ["ok", "x" * 21])
    assert caught.value.code == "input_too_long"
    assert "Input 1 has 21 characters" in caught.value.message
    with pytest.raises(InvalidRequest):
        embeddings.embed(CALLER, "m", [])
    assert fake.calls == []


def test_local_is_refused_outside_local_mode(aws: None) -> None:
    set_settings(replace(get_settings(), stage="prod"))
    try:
        with pytest.raises(InvalidRequest) as caught:
            embeddings.resolve(CALLER, "local")
    finally:
        set_settings(None)
    assert caught.value.code == "model_unavailable"
    assert caught.value.status == 400
