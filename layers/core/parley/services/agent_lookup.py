"""The one place the handoff service reaches the agents resource: `resolve(principal, ref)`.

STAND-IN. The agents resource (`parley.services.agents.resolve(principal, ref) -> AgentRecord`,
by `agt_` id or by name, 404 `agent_not_found` when the project has none) is built on another
branch. Until it is merged this module knows no agent, so every `to: agent:<ref>` is answered
400 `agent_not_found`; the handoff tests put an agent directory in its place. At the merge this
module's body becomes `from parley.services.agents import resolve  # noqa: F401` (or
parley.services.handoffs imports parley.services.agents under this name): handoffs use only the
record's `id` and `name`.
"""

from __future__ import annotations

from typing import Protocol

from parley.domain.errors import NotFound
from parley.domain.principal import Principal


class AgentRef(Protocol):
    """What a handoff needs of an agent record."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


def resolve(principal: Principal, ref: str) -> AgentRef:
    """The agent `ref` names (its `agt_` id or its name) in the caller's project."""
    raise NotFound(f"No agent {ref!r} in this project.", code="agent_not_found")
