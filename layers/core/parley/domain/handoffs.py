"""Handoffs (`hof_`): a conversation handed to a human operator or to another agent, and resolved.

A handoff is stored as its own item in the conversation's partition of the conversations table
(sk = `handoff#{id}`, ids are ULIDs: a conversation's handoffs sort oldest first), and a
pending one is also copied into the conversation item's `handoff` field, so every send reads
it with the conversation. The project's queue is the sparse `handoffs` index: only handoff
items carry its keys, `handoff_queue = {project}#{status}` and `handoff_at = {time}#{id}` (the
request time while pending, the resolution time once resolved), so `GET /v1/handoffs?status=`
is one bounded Query, oldest first, never a Scan.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from parley.domain.conversations import Message, _absent, _Strict, bounded_metadata, utf8_at_most
from parley.domain.records import StoredRecord

HANDOFF_SK_PREFIX = "handoff#"
HandoffStatus = Literal["pending", "resolved"]
MAX_REASON_CHARS = 1000
# `to`: `human`, or `agent:` and the agent's agt_ id or name (the agents resource resolves it)
TARGET_PATTERN = r"^(human|agent:[^\s:]{1,128})$"

Note = Annotated[str, Field(min_length=1, max_length=MAX_REASON_CHARS), utf8_at_most(4 * MAX_REASON_CHARS)]


def handoff_sk(handoff_id: str) -> str:
    return HANDOFF_SK_PREFIX + handoff_id


def queue_partition(project_id: str, status: str) -> str:
    return f"{project_id}#{status}"


def queue_keys(project_id: str, status: str, at: str, handoff_id: str) -> dict[str, str]:
    """The sparse `handoffs` index's keys of a handoff item (its place in the project's queue)."""
    return {"handoff_queue": queue_partition(project_id, status), "handoff_at": f"{at}#{handoff_id}"}


class HandoffCreate(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"to": "human", "reason": "Refund over $500", "metadata": {"queue": "billing"}},
                {"to": "agent:billing_agent", "reason": "A billing question"},
            ]
        }
    )

    to: str = Field(
        pattern=TARGET_PATTERN,
        max_length=134,
        description="`human` (an operator takes over), or `agent:<agt_ id or name>` (that agent answers from now on)",
    )
    reason: Note | None = Field(default=None, description="Why (at most 1,000 characters); shown to operators")
    metadata: dict[str, Any] | None = Field(default=None, description="Free JSON for the inbox (at most 8 KB)")

    _metadata = field_validator("metadata")(bounded_metadata)


class ResolvedBy(_Strict):
    """The operator who resolved a handoff (as the integrator knows them)."""

    id: str | None = Field(default=None, min_length=1, max_length=256)
    name: str | None = Field(default=None, min_length=1, max_length=256)


class HandoffResolve(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "resolution": "Refund approved",
                    "metadata": {"ticket": "T-1042"},
                    "resolved_by": {"id": "op_7", "name": "Dana"},
                }
            ]
        }
    )

    resolution: Note | None = Field(default=None, description="What came of it (at most 1,000 characters)")
    metadata: dict[str, Any] | None = Field(
        default=None, description="Merged over the request's metadata (top-level keys replace); at most 8 KB in all"
    )
    resolved_by: ResolvedBy | None = Field(default=None, description="Who resolved it (default: the API key)")

    _metadata = field_validator("metadata")(bounded_metadata)


class HandoffTarget(BaseModel):
    type: Literal["human", "agent"]
    agent_id: str | None = Field(default=None, exclude_if=_absent, description="The agent that took over")


class HandoffActor(BaseModel):
    """Who resolved a handoff: an operator (`human`, with the id and name given on resolve),
    Parley itself (`system`: a handoff to an agent resolves at once), or the API key that
    resolved it without naming anyone (`api_key`)."""

    type: Literal["human", "system", "api_key"]
    id: str | None = Field(default=None, exclude_if=_absent)
    name: str | None = Field(default=None, exclude_if=_absent)


class Handoff(BaseModel):
    id: str
    object: Literal["handoff"] = "handoff"
    conversation_id: str
    status: HandoffStatus
    target: HandoffTarget
    reason: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    requested_at: str
    resolved_at: str | None = None
    resolution: str | None = None
    resolved_by: HandoffActor | None = None


class HandoffRecord(StoredRecord):
    id: str
    conversation_id: str
    project_id: str
    org_id: str | None = None
    user_id: str | None = None  # the conversation's end user, for the events
    status: HandoffStatus
    target: Literal["human", "agent"]
    agent_id: str | None = None
    agent_name: str | None = None
    reason: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    requested_at: str
    requested_by: str | None = None  # the API key's id
    resolved_at: str | None = None
    resolution: str | None = None
    resolved_by: dict[str, Any] | None = None
    # the conversation versions the request and the resolution moved it to (their events' sequence)
    event_seq: int | None = None
    resolved_seq: int | None = None
    resolve_token: str | None = None  # which resolve request resolved it (tells a lost response from a lost race)

    def view(self) -> Handoff:
        return Handoff(
            id=self.id,
            conversation_id=self.conversation_id,
            status=self.status,
            target=HandoffTarget(type=self.target, agent_id=self.agent_id),
            reason=self.reason,
            metadata=self.metadata,
            requested_at=self.requested_at,
            resolved_at=self.resolved_at,
            resolution=self.resolution,
            resolved_by=HandoffActor(**self.resolved_by) if self.resolved_by else None,
        )

    def pending(self) -> dict[str, Any]:
        """What the conversation item's `handoff` field holds while this handoff is pending."""
        return {
            "id": self.id,
            "target": self.target,
            "reason": self.reason,
            "metadata": self.metadata,
            "requested_at": self.requested_at,
        }


HELD_NOTE = (
    "The conversation is handed off to a human: the message is stored and no model was called. An operator "
    "answers with POST .../messages {role: assistant, author: {type: human}}; after the handoff is resolved "
    "the model answers again, with the whole exchange in its context."
)


class HeldSend(BaseModel):
    """The answer to a user's message while the conversation is handed off to a human (202): the
    stored message, no reply, no model call."""

    object: Literal["held_send"] = "held_send"
    message: Message = Field(description="The stored user message")
    reply: None = Field(default=None, description="Always null: no model was called")
    handed_off: Literal[True] = True
    note: str = HELD_NOTE
