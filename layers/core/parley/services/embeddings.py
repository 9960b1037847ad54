"""Embeddings: which model embeds, in batches, retried, admitted against rate limits and budgets,
and metered and audited like every model call.

Resolution mirrors the chat registry (parley.services.registry.resolve):

1. `provider_id` names a stored provider, which embeds `model` as named;
2. `local` is the built-in local model (WordLlama, parley.providers.local_embeddings): always
   there in local mode (`make serve`, the tests), as `echo` is for chat; it is not installed on
   Lambda, so elsewhere it is a 400 `model_unavailable`;
3. `<provider name>/<model>` picks the stored provider of that name (when there is one; otherwise
   the whole name goes to the default provider, as for chat: `openai/text-embedding-3-small` on
   OpenRouter);
4. otherwise the project's default provider embeds the model.

Only providers of type openai and bedrock embed; naming another is a 400 `provider_cannot_embed`.
No provider for the model is a 404 `model_not_found` (OpenAI's code for an unknown model).

Inputs are checked against the model's limits before anything is called or counted (a 400
`input_too_long` naming the input), the call is admitted (RPM, TPM counted as UTF-8 bytes / 4, and
monthly budgets: 429), then the inputs go out in batches of the adapter's batch limit, each
retried on retryable errors with the chat path's backoff (parley.providers.resilient.Retrying).
Once it ends, however it ends, the call is metered once: tokens of every batch that was
embedded, cost from the price table, one audit event.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from parley.domain.chat import Usage
from parley.domain.errors import InvalidRequest, NotFound, ParleyError
from parley.domain.principal import Principal
from parley.providers.embeddings import EmbeddingProvider, EmbeddingRequest, InputType
from parley.providers.resilient import Retrying, RetryPolicy
from parley.services import limits, registry
from parley.services import providers as provider_store
from parley.services.completions import CallContext
from parley.services.metering import CallRecord, record_call
from parley.services.providers import LoadedProvider
from parley.settings import get_settings

ROUTE = "POST /v1/embeddings"
LOCAL = "local"


@dataclass(frozen=True)
class EmbeddingTarget:
    provider: EmbeddingProvider
    model: str
    provider_id: str | None = None  # the stored provider; None for the built-in local model


def _local() -> EmbeddingTarget:
    if not get_settings().local:
        raise InvalidRequest(
            "The built-in model 'local' runs only on the local server (make serve); here, embed with a provider"
            " of type openai or bedrock (e.g. model 'text-embedding-3-small' or 'amazon.titan-embed-text-v2:0').",
            code="model_unavailable",
            param="model",
        )
    from parley.providers.local_embeddings import LocalEmbeddings  # noqa: PLC0415 - dev only, loaded when used

    return EmbeddingTarget(LocalEmbeddings(), LOCAL)


def _stored(loaded: LoadedProvider, model: str) -> EmbeddingTarget:
    return EmbeddingTarget(registry.build_embedder(loaded), model, loaded.id)


def resolve(principal: Principal, model: str, provider_id: str | None = None) -> EmbeddingTarget:
    """The adapter and model that embed `model` for this project (see the module docstring)."""
    if provider_id is not None:
        loaded = registry.named_provider(principal, provider_id)
        try:
            return _stored(loaded, model)
        except InvalidRequest as error:
            error.param = "provider_id"  # the provider named there has no embeddings
            raise
    if model == LOCAL:
        return _local()
    if "/" in model:
        name, rest = model.split("/", 1)
        if name == LOCAL and rest == LOCAL:
            return _local()
        named = provider_store.find_for_call(principal, name=name)
        if named is not None and rest:
            return _stored(named, rest)
    default = provider_store.find_for_call(principal, default=True)
    if default is None or default.record.type not in ("openai", "bedrock"):
        reason = (
            "the project has no default AI provider"
            if default is None
            else f"the project's default provider {default.record.name!r} is of type {default.record.type!r},"
            " which has no embeddings"
        )
        raise NotFound(
            f"The model {model!r} does not exist or is not available: {reason}. Add a provider of type openai or"
            " bedrock (POST /v1/providers), name one as '<provider name>/<model>', or use the built-in model"
            " 'local' on the local server.",
            code="model_not_found",
            param="model",
        )
    return _stored(default, model)


def check_inputs(target: EmbeddingTarget, inputs: Sequence[str], param: str = "input") -> None:
    """Refuse (400) an empty input, or one longer than the model takes."""
    if not inputs:
        raise InvalidRequest("Give at least one input to embed.", code="invalid_request", param=param)
    limit = target.provider.input_limit(target.model)
    for i, text in enumerate(inputs):
        where = f"Input {i}" if len(inputs) > 1 else "The input"
        if not text:
            raise InvalidRequest(f"{where} is empty; empty strings cannot be embedded.", param=param)
        if limit.max_chars is not None and len(text) > limit.max_chars:
            raise InvalidRequest(
                f"{where} has {len(text)} characters; {target.model} takes at most {limit.max_chars}.",
                code="input_too_long",
                param=param,
            )
        if limit.max_tokens is not None:
            tokens = target.provider.count_tokens(target.model, text)
            if tokens > limit.max_tokens:
                raise InvalidRequest(
                    f"{where} has {tokens} tokens; {target.model} takes at most {limit.max_tokens}.",
                    code="input_too_long",
                    param=param,
                )


def embed(
    principal: Principal,
    model: str,
    inputs: Sequence[str],
    *,
    input_type: InputType = "document",
    dimensions: int | None = None,
    provider_id: str | None = None,
    user: str | None = None,
    context: CallContext | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> tuple[list[list[float]], Usage, str]:
    """One vector per input, in order; the usage (prompt tokens); and the model that embedded.

    `context` says where the call comes from (route, request id, resources) for the audit
    event, and receives the rate-limit quota the call left (`context.quota`)."""
    context = context or CallContext(route=ROUTE)
    context.user = user
    target = resolve(principal, model, provider_id)
    texts = list(inputs)
    check_inputs(target, texts)
    context.quota = limits.admit(principal, limits.estimate(texts, None), user)
    started = time.monotonic()
    retrying = Retrying(policy, sleep=sleep, rng=rng)
    size = max(1, target.provider.batch_limit(target.model))
    vectors: list[list[float]] = []
    tokens = 0
    answered = target.model
    try:
        for start in range(0, len(texts), size):
            request = EmbeddingRequest(
                model=target.model,
                inputs=texts[start : start + size],
                input_type=input_type,
                dimensions=dimensions,
                user=user,
            )
            reply = retrying.call(partial(target.provider.embed, request), target_label(target))
            vectors.extend([float(x) for x in vector] for vector in reply.vectors)
            tokens += reply.prompt_tokens
            answered = reply.model or answered
    except ParleyError as error:
        _audit(principal, context, target, started, retrying.tries, Usage.of(tokens, 0) if tokens else None, error)
        raise
    usage = Usage.of(tokens, 0)
    _audit(principal, context, target, started, retrying.tries, usage, None)
    return vectors, usage, answered


def target_label(target: EmbeddingTarget) -> str:
    return f"{target.provider.name}/{target.model}"


def _audit(
    principal: Principal,
    context: CallContext,
    target: EmbeddingTarget,
    started: float,
    tries: int,
    usage: Usage | None,
    error: ParleyError | None,
) -> None:
    record_call(
        principal,
        CallRecord(
            route=context.route,
            request_id=context.request_id,
            model=target.model,
            status=error.status if error else 200,
            outcome="failed" if error else "succeeded",
            latency_ms=int((time.monotonic() - started) * 1000),
            usage=usage,
            provider_id=target.provider_id,
            error_code=error.code if error else None,
            resource_ids=list(context.resource_ids),
            tries=max(1, tries),
            user=context.user,
            provider=target.provider.name,
        ),
    )
