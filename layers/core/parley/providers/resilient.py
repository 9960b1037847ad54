"""Retries, backoff and fallback around model providers.

A call is retried on retryable provider errors (429, 5xx, timeouts, connection failures) with
exponential backoff and full jitter, honouring the provider's Retry-After, but only until the
first token: once a stream has produced anything, a failure ends it (the caller turns that into
an error event) and is never retried, so no client ever receives text twice.

When a target's retries run out (or its credentials are refused), the next target of the
fallback list is tried; a request the provider rejected as invalid is not retried elsewhere,
since it would be rejected again.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

from parley import metrics
from parley.domain.errors import ProviderError, ProviderRejected
from parley.iterators import resume
from parley.providers.base import ModelProvider, ModelReply, ModelRequest, StreamEvent

log = logging.getLogger(__name__)
T = TypeVar("T")
TTFT_METRIC = "TimeToFirstToken"


@dataclass(frozen=True)
class Target:
    provider: ModelProvider
    model: str
    provider_id: str | None = None  # the stored AI provider, None for the built-in echo

    @property
    def label(self) -> str:
        return f"{self.provider.name}/{self.model}"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # tries per target, the first included
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 20.0  # a longer Retry-After is not waited for: the client gets the 429

    def delay(self, attempt: int, error: ProviderError, rng: Callable[[], float]) -> float | None:
        """Seconds before retry number `attempt` (1-based), or None when not worth waiting."""
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_retry_after else None
        return float(rng() * min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Outcome:
    """Which target answered, after how many tries in all."""

    target: Target
    tries: int


class Retrying:
    """Calls to one target, retried on retryable errors with the policy's backoff; `tries` counts
    every try made through this object (a Resilient chain, or the batches of an embeddings call)."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._rng = rng
        self.tries = 0

    def call(self, call: Callable[[], T], label: str) -> T:
        """The call's result; raises its last ProviderError once retrying is not worth it (not
        retryable, a rejected request, attempts used up, or a Retry-After too long to wait)."""
        for attempt in range(1, self.policy.attempts + 1):
            self.tries += 1
            try:
                return call()
            except ProviderError as error:
                log.warning(
                    "model call failed",
                    extra={
                        "target": label,
                        "attempt": attempt,
                        "code": error.code,
                        "upstream_status": error.upstream_status,
                    },
                )
                if isinstance(error, ProviderRejected) or not error.retryable or attempt == self.policy.attempts:
                    raise
                wait = self.policy.delay(attempt, error, self._rng)
                if wait is None:
                    raise
                self._sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")


class Resilient:
    def __init__(
        self,
        targets: Sequence[Target],
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not targets:
            raise ValueError("at least one target")
        self.targets = tuple(targets)
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._rng = rng
        self._clock = clock

    def _attempt(self, request: ModelRequest, call: Callable[[Target, ModelRequest], T]) -> tuple[T, Outcome]:
        retrying = Retrying(self.policy, sleep=self._sleep, rng=self._rng)
        last: ProviderError | None = None
        for target in self.targets:
            routed = replace(request, model=target.model)
            try:
                return retrying.call(partial(call, target, routed), target.label), Outcome(target, retrying.tries)
            except ProviderRejected:
                raise
            except ProviderError as error:
                last = error
        assert last is not None
        raise last

    def complete(self, request: ModelRequest) -> tuple[ModelReply, Outcome]:
        return self._attempt(request, lambda target, routed: target.provider.complete(routed))

    def stream(self, request: ModelRequest) -> tuple[Iterator[StreamEvent], Outcome]:
        """The first event is awaited here (with retries and fallback); the rest is not retried.

        How long that took is the metric TimeToFirstToken (milliseconds, from the first try to
        the first event, retries and fallback included), once for all providers (what the alarm
        watches) and once by the provider that answered."""

        def open_stream(target: Target, routed: ModelRequest) -> tuple[StreamEvent, Iterator[StreamEvent]]:
            events = target.provider.stream(routed)
            try:
                return next(events), events
            except StopIteration as exc:
                raise ProviderError(f"{target.label} ended its stream without a reply.", retryable=True) from exc

        started = self._clock()
        (first, rest), outcome = self._attempt(request, open_stream)
        elapsed_ms = (self._clock() - started) * 1000
        metrics.milliseconds(TTFT_METRIC, elapsed_ms)
        metrics.milliseconds(TTFT_METRIC, elapsed_ms, provider=outcome.target.provider.name)
        return resume(first, rest), outcome
