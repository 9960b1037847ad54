"""Agents: create, read (the latest version or a stored one), list, update (a new version),
delete, rotate the signing secret; and what the conversation code asks of an agent (`resolve`,
`version_of`, `signing_secret`).

Every route takes an agent's id (`agt_...`) or its name (`support_agent`). An update re-reads
and tries again when another update (or a rotation, or a delete) wrote in between, up to
UPDATE_TRIES times, then answers 409 `concurrent_update`: no update is ever lost to another.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from parley.domain.agents import (
    NAME_PATTERN,
    Agent,
    AgentCreate,
    AgentRecord,
    AgentUpdate,
    AgentWithSecret,
    ClientTool,
    HttpTool,
    check_tools,
)
from parley.domain.clock import iso
from parley.domain.conversations import ContextSettings
from parley.domain.errors import Conflict, InvalidRequest, NotFound, ParleyError, ProviderError
from parley.domain.ids import has_prefix, new_id
from parley.domain.paging import Pages, Position
from parley.domain.principal import Principal
from parley.domain.signatures import new_secret
from parley.services import once
from parley.services import providers as provider_store
from parley.services.urls import Resolver, check_callback_url
from parley.storage.agents import AgentRepository, AgentSecret, NameTaken, StaleAgent, secret_name
from parley.storage.base import backoff
from parley.storage.secrets import SecretStore, secrets

UPDATE_TRIES = 5
SECRET_DESCRIPTION = "Parley agent signing secret (http tools)"  # noqa: S105 - a description
AGENT_PAGES = Pages("agents", {"after": str})
VERSION_PAGES = Pages("agent_versions", {"agent_id": str, "after": str})
# Fields a PATCH may not set to null, and those whose null means "back to the default".
_REQUIRED = ("name", "tools", "max_tool_steps")
_CLEARABLE = ("description", "provider_id", "model", "system_prompt", "knowledge_index_id")
_NAME = re.compile(NAME_PATTERN)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    """What the service talks to; tests inject their own."""

    agents: AgentRepository = field(default_factory=AgentRepository)
    secrets: SecretStore = field(default_factory=secrets)
    clock: Callable[[], datetime] = _utcnow
    resolver: Resolver | None = None  # None: the system's (http tools' URLs are checked when stored)
    sleep: Callable[[float], None] = time.sleep


_override: Deps | None = None


def set_deps(deps: Deps | None) -> None:
    """Inject the dependencies every call without its own uses (tests); None restores the defaults."""
    global _override
    _override = deps


def _deps(deps: Deps | None) -> Deps:
    return deps or _override or Deps()


def _not_found(ref: str) -> NotFound:
    return NotFound(f"No agent {ref!r}.", code="agent_not_found")


def _load(principal: Principal, ref: str, deps: Deps) -> AgentRecord:
    """The head of the caller's project's agent `ref` (an id or a name)."""
    project = principal.project_id
    if has_prefix(ref, "agt"):
        agent_id: str | None = ref
    else:
        agent_id = deps.agents.claim_of(project, ref) if _NAME.fullmatch(ref) else None
    record = deps.agents.get(project, agent_id) if agent_id is not None else None
    if record is None or ref not in (record.id, record.name):  # a claim read while the agent was renamed
        raise _not_found(ref)
    return record


def _check_tools(tools: list[ClientTool | HttpTool], deps: Deps) -> list[ClientTool | HttpTool]:
    """The tools, their http URLs normalised: names unique, schemas valid, URLs allowed."""
    check_tools(tools)
    checked: list[ClientTool | HttpTool] = []
    for i, tool in enumerate(tools):
        if isinstance(tool, HttpTool):
            url = check_callback_url(tool.url, param=f"tools[{i}].url", resolver=deps.resolver)
            tool = tool.model_copy(update={"url": url})  # noqa: PLW2901 - the checked form replaces it
        checked.append(tool)
    return checked


def _check_provider(principal: Principal, provider_id: str | None) -> None:
    if provider_id is None:
        return
    try:
        provider_store.get(principal, provider_id)
    except NotFound:
        raise InvalidRequest(
            f"No AI provider {provider_id!r} in this project.", code="provider_not_found", param="provider_id"
        ) from None


def _name_taken(name: str) -> Conflict:
    return Conflict(f"The project has an agent named {name!r} already.", code="agent_name_taken")


def _already_created(earlier: tuple[str, str], fingerprint: str) -> Conflict:
    return once.already_created(
        earlier,
        fingerprint,
        what="agent",
        rotate="rotate its secret (POST /v1/agents/{id}/rotate-secret)",
        code="agent_already_created",
    )


def create(
    principal: Principal, body: AgentCreate, idempotency_key: str | None = None, deps: Deps | None = None
) -> AgentWithSecret:
    """A new agent at version 1, and its signing secret (in this answer only). A taken name is 409
    `agent_name_taken`. With an Idempotency-Key a retry never makes a second agent: it answers
    409 naming the one made."""
    deps = _deps(deps)
    tools = _check_tools(list(body.tools), deps)
    _check_provider(principal, body.provider_id)
    marker = None
    if idempotency_key is not None:
        marker = (once.marker(principal.project_id, idempotency_key), once.fingerprint(body))
        earlier = deps.agents.by_idempotency(principal.project_id, marker[0])
        if earlier is not None:
            raise _already_created(earlier, marker[1])
    agent_id = new_id("agt")
    now = iso(deps.clock())
    name = secret_name(principal.project_id, agent_id)
    record = AgentRecord(
        id=agent_id,
        project_id=principal.project_id,
        org_id=principal.org_id,
        name=body.name,
        description=body.description,
        provider_id=body.provider_id,
        model=body.model,
        system_prompt=body.system_prompt,
        tools=tools,
        knowledge_index_id=body.knowledge_index_id,
        context=body.context or ContextSettings(),
        max_tool_steps=body.max_tool_steps,
        metadata=body.metadata or {},
        secret_name=name,
        secret_rotated_at=now,
        version=1,
        created_at=now,
        updated_at=now,
    )
    secret = new_secret()
    deps.secrets.create(
        name, AgentSecret(current=secret, set_at=now).encode(), principal.project_id, SECRET_DESCRIPTION
    )
    try:
        deps.agents.create(record, marker)
    except Exception as failure:
        deps.secrets.delete(name)  # no secret outlives an agent that was never stored
        if isinstance(failure, NameTaken):
            raise _name_taken(body.name) from None
        if marker is not None:
            earlier = deps.agents.by_idempotency(principal.project_id, marker[0])
            if earlier is not None:  # a concurrent twin won
                raise _already_created(earlier, marker[1]) from None
        raise
    return AgentWithSecret(**record.view().model_dump(), signing_secret=secret)


def get(principal: Principal, ref: str, version: int | None = None, deps: Deps | None = None) -> Agent:
    """The agent (its latest version), or with `version` that stored version."""
    if version is None:
        return _load(principal, ref, _deps(deps)).view()
    return _version(principal, ref, version, _deps(deps)).view()


def list_agents(
    principal: Principal, limit: int, position: Position | None, deps: Deps | None = None
) -> tuple[list[Agent], Position | None]:
    """The project's agents (each at its latest version), newest first."""
    deps = _deps(deps)
    records, last = deps.agents.page(principal.project_id, limit, position["after"] if position else None)
    return [r.view() for r in records], ({"after": last} if last else None)


def list_versions(
    principal: Principal, ref: str, limit: int, position: Position | None, deps: Deps | None = None
) -> tuple[list[Agent], Position | None]:
    """An agent's stored versions, newest first."""
    deps = _deps(deps)
    head = _load(principal, ref, deps)
    if position is not None and position["agent_id"] != head.id:
        raise InvalidRequest("This cursor belongs to another agent's versions.", code="invalid_cursor", param="cursor")
    versions = deps.agents.versions
    scope = versions.scope(principal.project_id, head.id)
    records, last = versions.page(scope, limit, position["after"] if position else None)
    return [r.view() for r in records], ({"agent_id": head.id, "after": last} if last else None)


def _changes(record: AgentRecord, body: AgentUpdate, tools: list[ClientTool | HttpTool] | None) -> dict[str, Any]:
    """What the PATCH changes of the record (only what differs)."""
    fields = body.model_fields_set
    wanted: dict[str, Any] = {}
    for name in ("name", "max_tool_steps", *_CLEARABLE):
        if name in fields:
            wanted[name] = getattr(body, name)
    if tools is not None:
        wanted["tools"] = tools
    if "metadata" in fields:
        wanted["metadata"] = body.metadata or {}
    if "context" in fields:
        wanted["context"] = body.context or ContextSettings()
    current = record.model_dump()
    proposed = record.model_copy(update=wanted).model_dump()  # the context as a model, like the record's
    return {name: wanted[name] for name in wanted if proposed[name] != current[name]}


def update(principal: Principal, ref: str, body: AgentUpdate, deps: Deps | None = None) -> Agent:
    """A new version with the fields the body names (a body that changes nothing answers the
    agent as it is). A rename to a taken name is 409 `agent_name_taken`."""
    deps = _deps(deps)
    fields = body.model_fields_set
    for name in _REQUIRED:
        if name in fields and getattr(body, name) is None:
            raise InvalidRequest(f"An agent's {name} cannot be removed.", param=name)
    tools = _check_tools(list(body.tools), deps) if body.tools is not None else None
    if "provider_id" in fields:
        _check_provider(principal, body.provider_id)
    target = ref
    for attempt in range(UPDATE_TRIES):
        record = _load(principal, target, deps)
        target = record.id  # a rename in between must not lose the agent
        changes = _changes(record, body, tools)
        if not changes:
            return record.view()
        updated = record.model_copy(update={**changes, "version": record.version + 1, "updated_at": iso(deps.clock())})
        try:
            deps.agents.update(updated, record)
        except NameTaken:
            raise _name_taken(updated.name) from None
        except StaleAgent:
            deps.sleep(backoff(attempt, base=0.02))
            continue
        return updated.view()
    raise Conflict("The agent kept changing while this update ran; retry it.", code="concurrent_update")


def delete(principal: Principal, ref: str, deps: Deps | None = None) -> str:
    """The agent (head and name) and its signing secret, then its stored versions; its id."""
    deps = _deps(deps)
    target = ref
    for attempt in range(UPDATE_TRIES):
        record = _load(principal, target, deps)
        target = record.id
        try:
            deps.agents.remove(record)
        except StaleAgent:
            deps.sleep(backoff(attempt, base=0.02))
            continue
        deps.secrets.delete(record.secret_name)
        deps.agents.versions.purge(principal.project_id, record.id)
        return record.id
    raise Conflict("The agent kept changing while this delete ran; retry it.", code="concurrent_update")


def rotate_secret(principal: Principal, ref: str, deps: Deps | None = None) -> AgentWithSecret:
    """A new signing secret, in this answer only; the previous one stops signing at once."""
    deps = _deps(deps)
    record = _load(principal, ref, deps)
    at = iso(deps.clock())
    try:
        before = deps.secrets.get(record.secret_name, fresh=True)
    except ProviderError as unreadable:  # what the secret store raises is about a provider's key
        raise _unreadable() from unreadable
    secret = new_secret()
    deps.secrets.put(record.secret_name, AgentSecret(current=secret, set_at=at).encode())
    try:
        rotated = deps.agents.mark_rotated(principal.project_id, record.id, at)
    except Exception:
        deps.secrets.put(record.secret_name, before)  # the head still shows the old one: so must the secret
        raise
    if not rotated:
        raise _not_found(ref)  # deleted meanwhile (its secret with it)
    return AgentWithSecret(**record.view().model_dump(), signing_secret=secret)


# --- what the conversation code asks of an agent -------------------------------------------------


def resolve(principal: Principal, ref: str, deps: Deps | None = None) -> AgentRecord:
    """The agent `ref` names (its `agt_` id or its name) at its latest version; 404
    `agent_not_found` when the caller's project has none."""
    return _load(principal, ref, _deps(deps))


def _version(principal: Principal, ref: str, version: int, deps: Deps) -> AgentRecord:
    head = _load(principal, ref, deps)  # a deleted agent's versions are gone too, for every reader
    if version == head.version:
        return head
    found = deps.agents.versions.version(principal.project_id, head.id, version) if version > 0 else None
    if found is None:
        raise NotFound(f"The agent {ref!r} has no version {version}.", code="agent_not_found")
    return found


def version_of(principal: Principal, agent_id: str, version: int, deps: Deps | None = None) -> AgentRecord:
    """The agent as its stored `version` defines it (a conversation pinned to it); 404
    `agent_not_found` when the agent is deleted or has no such version."""
    return _version(principal, agent_id, version, _deps(deps))


def signing_secret(principal: Principal, agent_id: str, deps: Deps | None = None) -> str:
    """The secret that signs the agent's http tools' requests now. Read from this process's cache
    unless the head shows a rotation the cached copy does not have."""
    deps = _deps(deps)
    record = _load(principal, agent_id, deps)
    try:
        stored = AgentSecret.decode(deps.secrets.get(record.secret_name))
        if stored.set_at != record.secret_rotated_at:
            stored = AgentSecret.decode(deps.secrets.get(record.secret_name, fresh=True))
    except (ProviderError, ValueError) as unreadable:  # what the secret store raises is about a provider's key
        raise _unreadable() from unreadable
    return stored.current


def _unreadable() -> ParleyError:
    return ParleyError("The agent's signing secret could not be read.", code="agent_secret_unavailable")
