"""Which provider serves a request. Today: the built-in echo model; stored AI provider
resources (bring-your-own keys) plug in here."""

from __future__ import annotations

from parley.api.principal import Principal
from parley.domain.errors import InvalidRequest
from parley.providers.base import ModelProvider
from parley.providers.echo import EchoProvider


def resolve(principal: Principal, model: str, provider_id: str | None) -> tuple[ModelProvider, str]:
    """(provider, model name) for a request, or a 400 naming the field at fault."""
    del principal  # stored providers are per project; none exist yet
    if provider_id is not None:
        raise InvalidRequest(
            f"No AI provider {provider_id!r} in this project.", code="provider_not_found", param="provider_id"
        )
    provider = EchoProvider()
    name = model.split("/", 1)[1] if model.startswith(f"{provider.name}/") else model
    if name not in provider.models():
        available = ", ".join(provider.models())
        raise InvalidRequest(
            f"The model {model!r} does not exist or is not available. Available: {available}.",
            code="model_not_found",
            param="model",
        )
    return provider, name
