"""AI provider resources: create, read, update, delete, and loading one for a model call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parley.api.cursors import decode_cursor, encode_cursor
from parley.domain.clock import iso
from parley.domain.errors import InvalidRequest, NotFound
from parley.domain.ids import has_prefix, new_id
from parley.domain.principal import Principal
from parley.domain.providers import AIProvider, FallbackTarget, ProviderCreate, ProviderUpdate
from parley.services.urls import Resolver, check_outbound_url
from parley.settings import get_settings
from parley.storage.providers import ProviderRepository
from parley.storage.secrets import SecretStore, secrets

DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
_NO_KEY_TYPES = frozenset({"echo", "bedrock"})
_NO_URL_TYPES = frozenset({"echo", "bedrock"})


@dataclass
class Deps:
    """What the service talks to; tests inject their own."""

    repository: ProviderRepository
    secrets: SecretStore
    resolver: Resolver | None = None


def _deps(deps: Deps | None) -> Deps:
    return deps or Deps(ProviderRepository(), secrets())


def _now() -> str:
    return iso()


def _view(record: dict[str, Any], default_id: str | None) -> AIProvider:
    fields = {k: v for k, v in record.items() if k in AIProvider.model_fields}
    return AIProvider(**fields, is_default=record["id"] == default_id, api_key_set=bool(record.get("secret_name")))


def _check_shape(
    kind: str, *, base_url: str | None, api_key: bool, api_version: str | None, region: str | None
) -> None:
    if kind in _NO_URL_TYPES and base_url is not None:
        raise InvalidRequest(f"A {kind} provider has no base_url.", param="base_url")
    if kind in _NO_KEY_TYPES and api_key:
        why = "uses the function's IAM role" if kind == "bedrock" else "needs no key"
        raise InvalidRequest(f"A {kind} provider {why}; api_key is not accepted.", param="api_key")
    if api_version is not None and kind != "openai":
        raise InvalidRequest("api_version applies to openai providers (Azure OpenAI) only.", param="api_version")
    if region is not None and kind != "bedrock":
        raise InvalidRequest("region applies to bedrock providers only.", param="region")


def _check_url(url: str | None, deps: Deps) -> str | None:
    if url is None:
        return None
    return check_outbound_url(url, local=get_settings().local, param="base_url", resolver=deps.resolver)


def _check_fallbacks(principal: Principal, own_id: str, fallbacks: list[FallbackTarget], deps: Deps) -> None:
    for i, fallback in enumerate(fallbacks):
        if fallback.provider_id == own_id:
            raise InvalidRequest("A provider cannot fall back to itself.", param=f"fallbacks[{i}].provider_id")
        if deps.repository.get(principal.project_id, fallback.provider_id) is None:
            raise InvalidRequest(
                f"No AI provider {fallback.provider_id!r} in this project.",
                code="provider_not_found",
                param=f"fallbacks[{i}].provider_id",
            )


def create(principal: Principal, body: ProviderCreate, deps: Deps | None = None) -> AIProvider:
    deps = _deps(deps)
    _check_shape(
        body.type,
        base_url=body.base_url,
        api_key=body.api_key is not None,
        api_version=body.api_version,
        region=body.region,
    )
    if body.type == "anthropic" and body.api_key is None:
        raise InvalidRequest("An anthropic provider needs an api_key.", param="api_key")
    provider_id = new_id("aip")
    _check_fallbacks(principal, provider_id, body.fallbacks, deps)
    base_url = _check_url(body.base_url or DEFAULT_BASE_URLS.get(body.type), deps)
    now = _now()
    record: dict[str, Any] = {
        "id": provider_id,
        "project_id": principal.project_id,
        "type": body.type,
        "name": body.name,
        "base_url": base_url,
        "default_model": body.default_model,
        "api_version": body.api_version,
        "region": body.region,
        "headers": body.headers or {},
        "fallbacks": [f.model_dump(exclude_none=True) for f in body.fallbacks],
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    secret_name = None
    if body.api_key is not None:
        key = body.api_key.get_secret_value()
        secret_name = deps.secrets.name_for(principal.project_id, provider_id)
        deps.secrets.create(secret_name, key, principal.project_id)
        record.update(secret_name=secret_name, api_key_last4=key[-4:])
    try:
        deps.repository.create(record, make_default=body.is_default)
    except Exception:
        if secret_name is not None:  # no key may outlive a provider that was never stored
            deps.secrets.delete(secret_name)
        raise
    return _view(record, provider_id if body.is_default else deps.repository.default_id(principal.project_id))


def _load(principal: Principal, provider_id: str, deps: Deps) -> dict[str, Any]:
    record = deps.repository.get(principal.project_id, provider_id) if has_prefix(provider_id, "aip") else None
    if record is None:
        raise NotFound(f"No AI provider {provider_id!r}.", code="provider_not_found")
    return record


def get(principal: Principal, provider_id: str, deps: Deps | None = None) -> AIProvider:
    deps = _deps(deps)
    record = _load(principal, provider_id, deps)
    return _view(record, deps.repository.default_id(principal.project_id))


def list_providers(
    principal: Principal, limit: int, cursor: str | None, deps: Deps | None = None
) -> tuple[list[AIProvider], str | None]:
    deps = _deps(deps)
    after = decode_cursor(cursor, "providers")["after"] if cursor else None
    records, last = deps.repository.page(principal.project_id, limit, after)
    default_id = deps.repository.default_id(principal.project_id)
    next_cursor = encode_cursor("providers", {"after": last}) if last else None
    return [_view(r, default_id) for r in records], next_cursor


def update(principal: Principal, provider_id: str, body: ProviderUpdate, deps: Deps | None = None) -> AIProvider:
    deps = _deps(deps)
    record = _load(principal, provider_id, deps)
    changes = body.model_fields_set
    kind = record["type"]
    new = dict(record)
    for field in ("name", "default_model", "api_version", "region"):
        if field in changes:
            if field == "name" and body.name is None:
                raise InvalidRequest("name cannot be removed.", param="name")
            new[field] = getattr(body, field)
    if "headers" in changes:
        new["headers"] = body.headers or {}
    if "fallbacks" in changes:
        fallbacks = body.fallbacks or []
        _check_fallbacks(principal, provider_id, fallbacks, deps)
        new["fallbacks"] = [f.model_dump(exclude_none=True) for f in fallbacks]
    if "base_url" in changes:
        new["base_url"] = _check_url(body.base_url or DEFAULT_BASE_URLS.get(kind), deps)
    _check_shape(
        kind,
        base_url=body.base_url if "base_url" in changes else None,
        api_key=body.api_key is not None,
        api_version=new.get("api_version"),
        region=new.get("region"),
    )
    key_removed = "api_key" in changes and body.api_key is None and record.get("secret_name")
    if key_removed and kind == "anthropic":
        raise InvalidRequest("An anthropic provider needs an api_key.", param="api_key")
    default_id = deps.repository.default_id(principal.project_id)
    was_default = default_id == provider_id
    new.update(updated_at=_now(), version=int(record["version"]) + 1)

    created_secret = None
    if body.api_key is not None:
        key = body.api_key.get_secret_value()
        name = record.get("secret_name") or deps.secrets.name_for(principal.project_id, provider_id)
        if record.get("secret_name"):
            deps.secrets.put(name, key)  # a new version; the record below only shows its last 4
        else:
            deps.secrets.create(name, key, principal.project_id)
            created_secret = name
        new.update(secret_name=name, api_key_last4=key[-4:])
    elif key_removed:
        new.pop("secret_name", None)
        new.pop("api_key_last4", None)
    try:
        deps.repository.update(
            new,
            expected_version=int(record["version"]),
            old_name=record["name"],
            default=body.is_default if "is_default" in changes else None,
            was_default=was_default,
        )
    except Exception:
        if created_secret is not None:
            deps.secrets.delete(created_secret)
        raise
    if key_removed:
        deps.secrets.delete(str(record["secret_name"]))
    is_default = body.is_default if "is_default" in changes and body.is_default is not None else was_default
    return _view(new, provider_id if is_default else None)


def delete(principal: Principal, provider_id: str, deps: Deps | None = None) -> None:
    deps = _deps(deps)
    record = _load(principal, provider_id, deps)
    deps.repository.delete(record, was_default=deps.repository.default_id(principal.project_id) == provider_id)
    if record.get("secret_name"):
        deps.secrets.delete(str(record["secret_name"]))


@dataclass(frozen=True)
class LoadedProvider:
    """A stored provider ready for a call: its record and, if it has one, its key."""

    record: dict[str, Any]
    api_key: str | None

    @property
    def id(self) -> str:
        return str(self.record["id"])


def load_for_call(principal: Principal, provider_id: str, deps: Deps | None = None) -> LoadedProvider:
    deps = _deps(deps)
    record = _load(principal, provider_id, deps)
    key = deps.secrets.get(str(record["secret_name"])) if record.get("secret_name") else None
    return LoadedProvider(record, key)


def find_for_call(
    principal: Principal, *, name: str | None = None, default: bool = False, deps: Deps | None = None
) -> LoadedProvider | None:
    """The provider called `name`, or the project's default provider, if there is one."""
    deps = _deps(deps)
    provider_id = (
        deps.repository.id_by_name(principal.project_id, name)
        if name is not None
        else deps.repository.default_id(principal.project_id)
        if default
        else None
    )
    return load_for_call(principal, provider_id, deps) if provider_id else None
