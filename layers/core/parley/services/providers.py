"""AI provider resources: create, read, update, delete, and loading one for a model call.

A provider's credentials (its API key and every extra header value) live in its Secrets
Manager secret; the record keeps only what the API shows: `api_key_last4` and, per header,
a `HeaderHint` (`secret_headers`). Records written before header values moved to the secret
keep them under `headers`: they are shown masked, still sent, and moved into the secret by
the next update of the provider.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from parley.domain.clock import iso
from parley.domain.errors import InvalidRequest, NotFound
from parley.domain.ids import has_prefix, new_id
from parley.domain.paging import Pages, Position
from parley.domain.principal import Principal
from parley.domain.providers import (
    AIProvider,
    FallbackTarget,
    HeaderHint,
    ProviderCreate,
    ProviderRecord,
    ProviderUpdate,
)
from parley.services.urls import Resolver, check_outbound_url
from parley.settings import get_settings
from parley.storage.providers import ProviderRepository
from parley.storage.secrets import ProviderSecret, SecretStore, secrets

DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
_NO_KEY_TYPES = frozenset({"echo", "bedrock"})
_NO_URL_TYPES = frozenset({"echo", "bedrock"})
T = TypeVar("T")


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


# What a record and the API's view share (the view adds headers' hints, is_default, api_key_set).
_SHOWN = set(AIProvider.model_fields) - {"object", "headers", "is_default", "api_key_set"}


def _view(record: ProviderRecord, default_id: str | None) -> AIProvider:
    hints = {name: HeaderHint.of(value) for name, value in (record.headers or {}).items()}
    hints.update(record.secret_headers or {})
    return AIProvider(
        **record.model_dump(include=_SHOWN),
        headers=hints,
        is_default=record.id == default_id,
        api_key_set=record.api_key_last4 is not None,
    )


def _with_secret(record: ProviderRecord, name: str | None, secret: ProviderSecret) -> ProviderRecord:
    """The record showing `secret` (stored under `name`): the key's last 4, the header hints;
    no plain-text header values any more."""
    return record.model_copy(
        update={
            "headers": None,
            "secret_name": name if name is not None and not secret.empty else None,
            "api_key_last4": secret.api_key[-4:] if secret.api_key is not None else None,
            "secret_headers": {n: HeaderHint.of(v) for n, v in secret.headers.items()} or None,
        }
    )


def _merged_headers(current: Mapping[str, str], patch: Mapping[str, str | None] | None) -> dict[str, str]:
    """RFC 7396 merge of a PATCH's headers (None removes; names match case-insensitively)."""
    if patch is None:
        return {}
    merged = dict(current)
    for name, value in patch.items():
        for existing in [n for n in merged if n.lower() == name.lower()]:
            del merged[existing]
        if value is not None:
            merged[name] = value
    return merged


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
    record = ProviderRecord(
        id=provider_id,
        project_id=principal.project_id,
        type=body.type,
        name=body.name,
        base_url=base_url,
        default_model=body.default_model,
        api_version=body.api_version,
        region=body.region,
        fallbacks=list(body.fallbacks),
        created_at=now,
        updated_at=now,
    )
    secret = ProviderSecret(
        api_key=body.api_key.get_secret_value() if body.api_key is not None else None,
        headers={k: v for k, v in (body.headers or {}).items() if v is not None},
    )
    secret_name = None
    if not secret.empty:
        secret_name = deps.secrets.name_for(principal.project_id, provider_id)
        deps.secrets.create(secret_name, secret.encode(), principal.project_id)
    record = _with_secret(record, secret_name, secret)
    _call_cache.forget(principal.project_id)
    try:
        deps.repository.create(record, make_default=body.is_default)
    except Exception:
        if secret_name is not None:  # no credential may outlive a provider that was never stored
            deps.secrets.delete(secret_name)
        raise
    finally:
        _call_cache.forget(principal.project_id)  # again: a call meanwhile may have cached the old state
    return _view(record, provider_id if body.is_default else deps.repository.default_id(principal.project_id))


def _load(principal: Principal, provider_id: str, deps: Deps) -> ProviderRecord:
    record = deps.repository.get(principal.project_id, provider_id) if has_prefix(provider_id, "aip") else None
    if record is None:
        raise NotFound(f"No AI provider {provider_id!r}.", code="provider_not_found")
    return record


def get(principal: Principal, provider_id: str, deps: Deps | None = None) -> AIProvider:
    deps = _deps(deps)
    record = _load(principal, provider_id, deps)
    return _view(record, deps.repository.default_id(principal.project_id))


PAGES = Pages("providers", {"after": str})


def list_providers(
    principal: Principal, limit: int, position: Position | None, deps: Deps | None = None
) -> tuple[list[AIProvider], Position | None]:
    deps = _deps(deps)
    records, last = deps.repository.page(principal.project_id, limit, position["after"] if position else None)
    default_id = deps.repository.default_id(principal.project_id)
    return [_view(r, default_id) for r in records], ({"after": last} if last else None)


@dataclass(frozen=True)
class _CredentialChange:
    """A PATCH's change to a provider's secret: written before the record, undone if the record
    write fails, and the secret deleted after it if nothing is left in it."""

    name: str
    before: str | None = field(repr=False)  # the stored value; None: there was no secret
    secret: ProviderSecret

    def write(self, store: SecretStore, project_id: str) -> None:
        if self.secret.empty:
            return
        if self.before is not None:
            store.put(self.name, self.secret.encode())  # a new version; the record shows hints only
        else:
            store.create(self.name, self.secret.encode(), project_id)

    def undo(self, store: SecretStore) -> None:
        if self.secret.empty:
            return
        if self.before is None:
            store.delete(self.name)
        else:
            store.put(self.name, self.before)

    def finish(self, store: SecretStore) -> None:
        if self.secret.empty and self.before is not None:
            store.delete(self.name)


def _credential_change(
    principal: Principal, record: ProviderRecord, body: ProviderUpdate, deps: Deps
) -> _CredentialChange | None:
    """The new secret when the key or the headers change, or when plain-text headers of an
    older record move into the secret; None when the credentials stay as they are."""
    changes = body.model_fields_set
    legacy = dict(record.headers or {})
    if not ({"api_key", "headers"} & changes or legacy):
        return None
    old_name = record.secret_name
    before = deps.secrets.get(old_name) if old_name else None
    stored = ProviderSecret.decode(before) if before is not None else ProviderSecret()
    key, headers = stored.api_key, {**legacy, **stored.headers}
    if "api_key" in changes:
        key = body.api_key.get_secret_value() if body.api_key is not None else None
    if "headers" in changes:
        headers = _merged_headers(headers, body.headers)
    name = old_name or deps.secrets.name_for(principal.project_id, record.id)
    return _CredentialChange(name, before, ProviderSecret(api_key=key, headers=headers))


def update(principal: Principal, provider_id: str, body: ProviderUpdate, deps: Deps | None = None) -> AIProvider:
    deps = _deps(deps)
    record = _load(principal, provider_id, deps)
    changes = body.model_fields_set
    kind = record.type
    updates: dict[str, Any] = {}
    for attribute in ("name", "default_model", "api_version", "region"):
        if attribute in changes:
            if attribute == "name" and body.name is None:
                raise InvalidRequest("name cannot be removed.", param="name")
            updates[attribute] = getattr(body, attribute)
    if "fallbacks" in changes:
        fallbacks = body.fallbacks or []
        _check_fallbacks(principal, provider_id, fallbacks, deps)
        updates["fallbacks"] = list(fallbacks)
    if "base_url" in changes:
        updates["base_url"] = _check_url(body.base_url or DEFAULT_BASE_URLS.get(kind), deps)
    new = record.model_copy(update=updates)
    _check_shape(
        kind,
        base_url=body.base_url if "base_url" in changes else None,
        api_key=body.api_key is not None,
        api_version=new.api_version,
        region=new.region,
    )
    key_removed = "api_key" in changes and body.api_key is None and record.api_key_last4 is not None
    if key_removed and kind == "anthropic":
        raise InvalidRequest("An anthropic provider needs an api_key.", param="api_key")
    # consistent: it decides the write (whether the default marker moves with this update)
    default_id = deps.repository.default_id(principal.project_id, consistent=True)
    was_default = default_id == provider_id
    new = new.model_copy(update={"updated_at": _now(), "version": record.version + 1})

    _call_cache.forget(principal.project_id)
    change = _credential_change(principal, record, body, deps)
    if change is not None:
        change.write(deps.secrets, principal.project_id)
        new = _with_secret(new, change.name, change.secret)
    try:
        deps.repository.update(
            new,
            expected_version=record.version,
            old_name=record.name,
            default=body.is_default if "is_default" in changes else None,
            was_default=was_default,
        )
    except Exception:
        if change is not None:
            change.undo(deps.secrets)  # the record still shows the old credentials: so must the secret
        raise
    finally:
        _call_cache.forget(principal.project_id)
    if change is not None:
        change.finish(deps.secrets)
    is_default = body.is_default if "is_default" in changes and body.is_default is not None else was_default
    return _view(new, provider_id if is_default else None)


def delete(principal: Principal, provider_id: str, deps: Deps | None = None) -> None:
    deps = _deps(deps)
    record = _load(principal, provider_id, deps)
    _call_cache.forget(principal.project_id)
    try:
        deps.repository.delete(
            record, was_default=deps.repository.default_id(principal.project_id, consistent=True) == provider_id
        )
    finally:
        _call_cache.forget(principal.project_id)
    if record.secret_name:
        deps.secrets.delete(record.secret_name)


@dataclass(frozen=True)
class LoadedProvider:
    """A stored provider ready for a call: its record and its credentials (never in its repr)."""

    record: ProviderRecord
    api_key: str | None = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def id(self) -> str:
        return self.record.id


_MISSING = object()  # a cached miss (no default provider, no provider by that name)


class CallCache:
    """Provider lookups for model calls, kept per warm environment for `seconds`
    (settings.provider_cache_seconds, 30 by default): a warm model call then costs no DynamoDB
    read for its provider. A lookup asked with `keep_miss` (the project's default provider, a
    provider by name) keeps its miss too, for the same `seconds`: a project that calls the
    built-in echo model, with no default provider, does not read its default on every call.
    A provider created, changed or deleted through another function's environment reaches
    model calls within `seconds`; in the environment that wrote it, at once (`forget`, called
    before and after every provider write)."""

    def __init__(self, seconds: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._items: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    @property
    def seconds(self) -> float:
        return self._seconds if self._seconds is not None else get_settings().provider_cache_seconds

    def get(self, key: tuple[str, ...], load: Callable[[], T | None], *, keep_miss: bool = False) -> T | None:
        seconds = self.seconds
        if seconds <= 0:
            return load()
        now = self._clock()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and hit[0] > now:
            return None if hit[1] is _MISSING else cast("T", hit[1])
        value = load()
        if value is not None or keep_miss:
            with self._lock:
                self._items[key] = (now + seconds, _MISSING if value is None else value)
        return value

    def forget(self, project_id: str) -> None:
        with self._lock:
            for key in [k for k in self._items if k[1] == project_id]:
                del self._items[key]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_call_cache = CallCache()


def call_cache() -> CallCache:
    return _call_cache


def load_for_call(principal: Principal, provider_id: str, deps: Deps | None = None) -> LoadedProvider:
    if deps is None:
        loaded = _call_cache.get(
            ("provider", principal.project_id, provider_id), lambda: _load_for_call(principal, provider_id, _deps(None))
        )
        assert loaded is not None
        return loaded
    return _load_for_call(principal, provider_id, deps)


def _load_for_call(principal: Principal, provider_id: str, deps: Deps) -> LoadedProvider:
    """The record by an eventually consistent read (half the read cost, and a provider record
    changes rarely; a model call may use one that is a moment old, as it may one cached for
    `provider_cache_seconds`); only a miss is confirmed by a consistent read, so a provider
    created a moment ago is found."""
    record = None
    if has_prefix(provider_id, "aip"):
        record = deps.repository.get(principal.project_id, provider_id, consistent=False)
        record = record or deps.repository.get(principal.project_id, provider_id)
    if record is None:
        raise NotFound(f"No AI provider {provider_id!r}.", code="provider_not_found")
    name = record.secret_name
    secret = ProviderSecret.decode(deps.secrets.get(name)) if name else ProviderSecret()
    return LoadedProvider(record, secret.api_key, {**(record.headers or {}), **secret.headers})


def find_for_call(
    principal: Principal, *, name: str | None = None, default: bool = False, deps: Deps | None = None
) -> LoadedProvider | None:
    """The provider called `name`, or the project's default provider, if there is one."""
    cached = deps is None
    deps = _deps(deps)
    project = principal.project_id
    repository = deps.repository
    key: tuple[str, ...]
    # Eventually consistent reads; a miss is confirmed by a consistent one before it is believed
    # (and kept for the cache's seconds), so a provider or default set a moment ago is found.
    if name is not None:
        wanted = name
        key = ("name", project, wanted.lower())

        def lookup() -> str | None:
            return repository.id_by_name(project, wanted) or repository.id_by_name(project, wanted, consistent=True)

    elif default:
        key = ("default", project)

        def lookup() -> str | None:
            return repository.default_id(project) or repository.default_id(project, consistent=True)

    else:
        return None
    provider_id = _call_cache.get(key, lookup, keep_miss=True) if cached else lookup()
    if provider_id is None:
        return None
    return load_for_call(principal, provider_id, None if cached else deps)
