"""The models a key can name (OpenAI's GET /v1/models), as parley.services.registry routes them.

- `echo`, the built-in model, always;
- each stored provider's default_model, and each model a provider's fallbacks name on another
  provider, as `<provider name>/<model>` (the registry routes that form to the named provider);
- the same bare, for the project's default provider only: the registry sends a bare model name to
  the default provider, so a bare id is listed exactly where it is unambiguous.

Under a chat's base URL (/v1/chats/{id}/models) the list is the model that chat's completions use.
Providers are read in pages, at most MAX_PROVIDERS of them, so a request's reads stay bounded.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import unquote

from parley.domain.errors import NotFound
from parley.domain.models import Model, ModelList
from parley.domain.principal import Principal
from parley.domain.providers import AIProvider
from parley.services import chats
from parley.services import providers as provider_store
from parley.services.registry import ECHO

MAX_PROVIDERS = 500
_PAGE = 100
ECHO_MODEL = Model(id=ECHO, created=0, owned_by="parley")


def _created(provider: AIProvider) -> int:
    try:
        return int(datetime.fromisoformat(provider.created_at.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _providers(principal: Principal) -> list[AIProvider]:
    found: list[AIProvider] = []
    position = None
    while len(found) < MAX_PROVIDERS:
        batch, position = provider_store.list_providers(principal, _PAGE, position)
        found += batch
        if position is None:
            break
    return found[:MAX_PROVIDERS]


def _add(models: dict[str, Model], model_id: str, provider: AIProvider) -> None:
    models.setdefault(model_id, Model(id=model_id, created=_created(provider), owned_by=provider.name))


def list_models(principal: Principal) -> ModelList:
    providers = _providers(principal)
    by_id = {p.id: p for p in providers}
    models: dict[str, Model] = {ECHO: ECHO_MODEL}
    for provider in providers:
        if provider.default_model:
            _add(models, f"{provider.name}/{provider.default_model}", provider)
        for fallback in provider.fallbacks:
            target = by_id.get(fallback.provider_id)
            if target is not None and fallback.model:
                _add(models, f"{target.name}/{fallback.model}", target)
    default = next((p for p in providers if p.is_default), None)
    if default is not None:
        prefix = f"{default.name}/"
        for model_id in list(models):
            bare = model_id[len(prefix) :]
            if model_id.startswith(prefix) and bare != ECHO:
                _add(models, bare, default)
    return ModelList(data=list(models.values()))


def list_chat_models(principal: Principal, chat_id: str) -> ModelList:
    chat = chats.get(principal, chat_id)
    try:
        provider = provider_store.get(principal, chat.ai_provider_id)
    except NotFound:
        return ModelList(data=[])  # the chat's provider is gone: its completions answer 400
    model = chat.model or provider.default_model
    if not model:
        return ModelList(data=[])  # the call's own model is used: any name the provider takes
    models: dict[str, Model] = {}
    _add(models, model, provider)
    _add(models, f"{provider.name}/{model}", provider)
    return ModelList(data=list(models.values()))


def _find(listed: ModelList, model_id: str) -> Model:
    # OpenAI's SDKs send a slash in a model id as %2F (one path segment).
    wanted = unquote(model_id)
    for model in listed.data:
        if model.id == wanted:
            return model
    raise NotFound(f"The model {wanted!r} does not exist or is not available to this key.", code="model_not_found")


def get_model(principal: Principal, model_id: str) -> Model:
    return _find(list_models(principal), model_id)


def get_chat_model(principal: Principal, chat_id: str, model_id: str) -> Model:
    return _find(list_chat_models(principal, chat_id), model_id)
