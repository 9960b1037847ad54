"""Which provider and model serve a request, with its fallbacks.

In order: `provider_id` names a stored provider; a model written `<provider name>/<model>`
selects the stored provider of that name; the model `echo` is always the built-in echo model;
otherwise the project's default provider serves the model. Without any of these the request
is refused with a 404 `model_not_found` naming `model`, as OpenAI answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import httpx

from parley.aws import Clients
from parley.domain.errors import InvalidRequest, NotFound
from parley.domain.principal import Principal
from parley.domain.providers import FallbackTarget
from parley.providers.base import ModelProvider
from parley.providers.echo import EchoProvider
from parley.providers.embeddings import EmbeddingProvider
from parley.providers.http import make_client
from parley.providers.resilient import Target
from parley.services import providers as provider_store
from parley.services.providers import LoadedProvider

log = logging.getLogger(__name__)
ECHO = "echo"
_http: httpx.Client | None = None
_regional: dict[str, Clients] = {}
_lock = threading.Lock()


def http_client() -> httpx.Client:
    """One pooled HTTP client per process, shared by every HTTP provider (connections are reused)."""
    global _http
    with _lock:
        if _http is None:
            _http = make_client()
        return _http


def build(loaded: LoadedProvider) -> ModelProvider:
    record = loaded.record
    kind = record.type
    if kind == "echo":
        return EchoProvider()
    if kind == "openai":
        from parley.providers.openai import OpenAIProvider  # noqa: PLC0415 - loaded only when used

        return OpenAIProvider(
            api_key=loaded.api_key,
            base_url=record.base_url or provider_store.DEFAULT_BASE_URLS[kind],
            headers=loaded.headers,
            api_version=record.api_version,
            client=http_client(),
        )
    if kind == "anthropic":
        from parley.providers.anthropic import AnthropicProvider  # noqa: PLC0415

        return AnthropicProvider(
            api_key=loaded.api_key,
            base_url=record.base_url or provider_store.DEFAULT_BASE_URLS[kind],
            headers=loaded.headers,
            client=http_client(),
        )
    if kind == "bedrock":
        from parley.providers.bedrock import BedrockProvider  # noqa: PLC0415

        region = record.region
        if region is None:
            return BedrockProvider()
        with _lock:
            regional = _regional.setdefault(region, Clients(region=region))
        return BedrockProvider(client=regional.bedrock_runtime)
    raise ValueError(f"unknown provider type {kind!r}")


def build_embedder(loaded: LoadedProvider) -> EmbeddingProvider:
    """The embedding adapter of a stored provider (openai or bedrock); InvalidRequest for a type
    that has no embeddings (anthropic, echo)."""
    record = loaded.record
    kind = record.type
    if kind == "openai":
        from parley.providers.openai_embeddings import OpenAIEmbeddings  # noqa: PLC0415 - loaded only when used

        return OpenAIEmbeddings(
            api_key=loaded.api_key,
            base_url=record.base_url or provider_store.DEFAULT_BASE_URLS[kind],
            headers=loaded.headers,
            api_version=record.api_version,
            client=http_client(),
        )
    if kind == "bedrock":
        from parley.providers.bedrock_embeddings import BedrockEmbeddings  # noqa: PLC0415

        if record.region is None:
            return BedrockEmbeddings()
        with _lock:
            regional = _regional.setdefault(record.region, Clients(region=record.region))
        return BedrockEmbeddings(client=regional.bedrock_runtime)
    raise InvalidRequest(
        f"The AI provider {record.name!r} is of type {kind!r}, which has no embeddings models;"
        " embeddings come from providers of type openai or bedrock (or the built-in model 'local').",
        code="provider_cannot_embed",
        param="model",
    )


def _target(loaded: LoadedProvider, model: str | None, param: str) -> Target:
    chosen = model or loaded.record.default_model
    if not chosen:
        raise InvalidRequest(
            f"Name a model: the provider {loaded.record.name!r} has no default_model.",
            code="model_required",
            param=param,
        )
    return Target(build(loaded), str(chosen), loaded.id)


def named_provider(principal: Principal, provider_id: str) -> LoadedProvider:
    """The provider a request names with `provider_id`, for a call (400 when there is none)."""
    try:
        return provider_store.load_for_call(principal, provider_id)
    except NotFound:
        raise InvalidRequest(
            f"No AI provider {provider_id!r} in this project.", code="provider_not_found", param="provider_id"
        ) from None


def resolve(
    principal: Principal,
    model: str | None,
    provider_id: str | None,
    fallbacks: Sequence[FallbackTarget] | None = None,
    *,
    echo_when_unconfigured: bool = False,
) -> list[Target]:
    """The targets to try, in order: the chosen provider and model, then its fallbacks.

    `echo_when_unconfigured`: with neither model nor provider named and no default provider in the
    project, answer with the built-in echo model instead of refusing (stored conversations)."""
    loaded: LoadedProvider | None = None
    if provider_id is not None:
        loaded = named_provider(principal, provider_id)
    elif model is not None and "/" in model:
        name, rest = model.split("/", 1)
        if name == ECHO and rest == ECHO:
            model = ECHO
        else:
            loaded = provider_store.find_for_call(principal, name=name)
            if loaded is not None:
                model = rest
    if loaded is None:
        if model == ECHO:
            return [Target(EchoProvider(), ECHO)]
        loaded = provider_store.find_for_call(principal, default=True)
        if loaded is None and model is None and provider_id is None and echo_when_unconfigured:
            return [Target(EchoProvider(), ECHO)]
        if loaded is None:
            # 404, as OpenAI answers a model that does not exist.
            raise NotFound(
                f"The model {model!r} is not available: no AI provider serves it. Add a provider (POST /v1/providers),"
                " name one with provider_id, or use the built-in model 'echo'.",
                code="model_not_found",
                param="model",
            )
    targets = [_target(loaded, model, "model")]
    chain = fallbacks if fallbacks is not None else loaded.record.fallbacks
    for i, fallback in enumerate(chain):
        try:
            backup = provider_store.load_for_call(principal, fallback.provider_id)
        except NotFound:
            if fallbacks is not None:
                raise InvalidRequest(
                    f"No AI provider {fallback.provider_id!r} in this project.",
                    code="provider_not_found",
                    param=f"fallbacks[{i}].provider_id",
                ) from None
            log.warning("fallback provider is gone; skipped", extra={"provider_id": fallback.provider_id})
            continue
        backup_model = fallback.model or backup.record.default_model or model
        targets.append(_target(backup, backup_model, f"fallbacks[{i}].model"))
    return targets
