"""Agents (issue 15): a stored, versioned definition of how a conversation is answered: the
provider and model, the system prompt, the tools the model may call, the knowledge index, the
context defaults and how many tool steps one turn may take.

An agent is addressed by its id (`agt_` + ULID) or by its `name`, a slug unique in its project
(`support_agent`). Every update writes a new version (1 at create, +1 per update); the versions
are kept, immutable, so a conversation can be pinned to one.

Tools are functions the model may call, each with a JSON Schema (draft 2020-12) for its
arguments whose top-level type is `object`:

- `client`: the reply stops with the tool calls and the caller posts their results;
- `http`: Parley POSTs the arguments to the tool's https URL, signed with the agent's signing
  secret (Standard Webhooks, like webhooks), within `timeout_seconds`, reading at most
  `max_response_bytes` of the answer.

The signing secret is shown once, when the agent is created and when it is rotated; it lives in
Secrets Manager (the record keeps only its name).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from parley.domain.chat import FunctionDefinition, Tool
from parley.domain.conversations import ContextSettings, PromptText, bounded_metadata
from parley.domain.errors import InvalidRequest
from parley.domain.records import ProjectRecord

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
INDEX_ID_PATTERN = r"^idx_[0-9A-HJKMNP-TV-Z]{26}$"
MAX_TOOLS = 32
MAX_DESCRIPTION = 1024
# The JSON of an agent's tools: with the system prompt (at most 100,000 bytes) and metadata
# (8 KiB), a stored version stays well under DynamoDB's 400 KB item limit.
MAX_TOOLS_BYTES = 131_072
DEFAULT_MAX_TOOL_STEPS = 8
MAX_TOOL_STEPS = 25
DEFAULT_TOOL_TIMEOUT = 10
MAX_TOOL_TIMEOUT = 30
DEFAULT_TOOL_RESPONSE_BYTES = 100_000
MAX_TOOL_RESPONSE_BYTES = 1_000_000


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


def _empty_object_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


class _ToolBase(_Strict):
    """What both kinds of tool have, and what they give the model."""

    type: str
    name: str = Field(pattern=TOOL_NAME_PATTERN, description="Unique among the agent's tools; what the model calls")
    description: str | None = Field(
        default=None, max_length=MAX_DESCRIPTION, description="Tells the model when to call it"
    )
    parameters: dict[str, Any] = Field(
        default_factory=_empty_object_schema,
        description='The arguments\' JSON Schema (draft 2020-12); its top-level "type" is "object"',
    )

    def chat_tool(self) -> Tool:
        """The tool as a model call offers it (an OpenAI-style function)."""
        return Tool(
            type="function",
            function=FunctionDefinition(name=self.name, description=self.description, parameters=self.parameters),
        )


class ClientTool(_ToolBase):
    """A tool the caller runs: the reply stops with its tool calls; the caller posts the results."""

    type: Literal["client"]


class HttpTool(_ToolBase):
    """A tool Parley calls: a signed POST of the arguments to `url`; the answer goes back to the model."""

    type: Literal["http"]
    url: str = Field(max_length=2048, description="https (a public host); in local mode also http(s)://127.0.0.1")
    timeout_seconds: int = Field(default=DEFAULT_TOOL_TIMEOUT, ge=1, le=MAX_TOOL_TIMEOUT)
    max_response_bytes: int = Field(default=DEFAULT_TOOL_RESPONSE_BYTES, ge=1, le=MAX_TOOL_RESPONSE_BYTES)


def _tool_kind(value: Any) -> str | None:
    """The union member a tool is validated as. The tags are written `tool(<type>)` so that the
    error model leaves them out of `param` (as it does pydantic's other union tags): a bad field
    of the second tool is `tools[1].timeout_seconds`."""
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"tool({kind})" if kind in ("client", "http") else None


AgentTool = Annotated[
    Annotated[ClientTool, Tag("tool(client)")] | Annotated[HttpTool, Tag("tool(http)")],
    Discriminator(_tool_kind, custom_error_type="invalid_tool_type", custom_error_message="type is client or http"),
]


def check_parameters(schema: dict[str, Any], param: str) -> None:
    """A tool's parameters: a valid JSON Schema (draft 2020-12) whose top-level type is object;
    a 400 naming `param` otherwise. jsonschema is imported here, on first use, so it costs
    nothing at a cold start that validates no tool."""
    from jsonschema import Draft202012Validator  # noqa: PLC0415 - see the docstring
    from jsonschema.exceptions import SchemaError  # noqa: PLC0415

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as bad:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in bad.path)
        raise InvalidRequest(
            f"{param}{where} is not valid JSON Schema (draft 2020-12): {bad.message}",
            code="invalid_tool_schema",
            param=param,
        ) from None
    except RecursionError:  # request bodies stop at 64 levels, far from this; a schema built in code may not
        raise InvalidRequest(f"{param} is nested too deeply.", code="invalid_tool_schema", param=param) from None
    if schema.get("type") != "object":
        raise InvalidRequest(
            f'{param} must be a JSON Schema whose top-level "type" is "object".',
            code="invalid_tool_schema",
            param=param,
        )


def check_tools(tools: list[ClientTool | HttpTool]) -> None:
    """What the models cannot say alone: names unique, schemas valid, the whole bounded. (An
    http tool's URL is checked by the service, against the egress rules.)"""
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        if tool.name in seen:
            raise InvalidRequest(
                f"Two tools are named {tool.name!r}; tool names are unique within an agent.",
                code="duplicate_tool_name",
                param=f"tools[{i}].name",
            )
        seen.add(tool.name)
        check_parameters(tool.parameters, f"tools[{i}].parameters")
    size = len(tools_json(tools).encode())
    if size > MAX_TOOLS_BYTES:
        raise InvalidRequest(
            f"The tools are {size:,} bytes of JSON; an agent's tools are limited to {MAX_TOOLS_BYTES:,}.",
            code="tools_too_large",
            param="tools",
        )


def tools_json(tools: list[ClientTool | HttpTool]) -> str:
    return json.dumps([t.model_dump() for t in tools], separators=(",", ":"), ensure_ascii=False)


_NAME = Field(
    pattern=NAME_PATTERN,
    description="A slug unique in the project (support_agent); the agent can be addressed by it",
)
_DESCRIPTION = Field(default=None, max_length=MAX_DESCRIPTION)
_PROVIDER = Field(default=None, max_length=64, description="An AI provider of the project (aip_...)")
_MODEL = Field(default=None, min_length=1, max_length=256)
_TOOLS_DESCRIPTION = f"At most {MAX_TOOLS}, names unique"
_INDEX = Field(default=None, pattern=INDEX_ID_PATTERN, description="A knowledge index (idx_...), for retrieval")
_STEPS_DESCRIPTION = "How many tool calls one turn may make before it ends"


class AgentCreate(_Strict):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "support_agent",
                    "model": "echo",
                    "system_prompt": "You are Acme's support agent.",
                    "tools": [
                        {
                            "type": "client",
                            "name": "lookup_order",
                            "description": "Find an order by its number",
                            "parameters": {
                                "type": "object",
                                "properties": {"order_id": {"type": "string"}},
                                "required": ["order_id"],
                            },
                        }
                    ],
                }
            ]
        },
    )

    name: str = _NAME
    description: str | None = _DESCRIPTION
    provider_id: str | None = _PROVIDER
    model: str | None = _MODEL
    system_prompt: PromptText | None = None
    tools: list[AgentTool] = Field(default_factory=list, max_length=MAX_TOOLS, description=_TOOLS_DESCRIPTION)
    knowledge_index_id: str | None = _INDEX
    context: ContextSettings | None = None
    max_tool_steps: int = Field(default=DEFAULT_MAX_TOOL_STEPS, ge=1, le=MAX_TOOL_STEPS, description=_STEPS_DESCRIPTION)
    metadata: dict[str, Any] | None = None

    _metadata = field_validator("metadata")(bounded_metadata)


class AgentUpdate(_Strict):
    """PATCH: only the fields present change, and the agent gets a new version. `null` clears
    description, provider_id, model, system_prompt, knowledge_index_id, metadata and context
    (back to the defaults); name, tools and max_tool_steps cannot be null. `tools` replaces the
    whole list."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={"examples": [{"system_prompt": "You are Acme's billing agent.", "max_tool_steps": 4}]},
    )

    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    description: str | None = _DESCRIPTION
    provider_id: str | None = _PROVIDER
    model: str | None = _MODEL
    system_prompt: PromptText | None = None
    tools: list[AgentTool] | None = Field(default=None, max_length=MAX_TOOLS, description=_TOOLS_DESCRIPTION)
    knowledge_index_id: str | None = _INDEX
    context: ContextSettings | None = None
    max_tool_steps: int | None = Field(default=None, ge=1, le=MAX_TOOL_STEPS, description=_STEPS_DESCRIPTION)
    metadata: dict[str, Any] | None = None

    _metadata = field_validator("metadata")(bounded_metadata)


class Agent(BaseModel):
    """An agent (one version of it) as the API shows it: never its signing secret."""

    id: str
    object: Literal["agent"] = "agent"
    project_id: str
    name: str
    description: str | None = None
    provider_id: str | None = None
    model: str | None = None
    system_prompt: str | None = None
    tools: list[AgentTool] = Field(default_factory=list)
    knowledge_index_id: str | None = None
    context: ContextSettings = Field(default_factory=ContextSettings)
    max_tool_steps: int = DEFAULT_MAX_TOOL_STEPS
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int = Field(description="1 at create, +1 per update")
    created_at: str
    updated_at: str = Field(description="When this version was written")


class AgentWithSecret(Agent):
    """An agent with its signing secret: the answer of create and rotate-secret, and only those."""

    signing_secret: str = Field(description="Signs the requests of the agent's http tools (whsec_...); shown once")


class AgentRecord(ProjectRecord):
    """A stored agent: the head (the latest version) or one stored version, which is a copy of
    the head as that version wrote it. Tools are stored as one JSON string, so their schemas
    come back exactly as given (DynamoDB maps drop nulls and refuse some numbers and keys)."""

    org_id: str | None = None
    name: str
    description: str | None = None
    provider_id: str | None = None
    model: str | None = None
    system_prompt: str | None = None
    tools: list[AgentTool] = Field(default_factory=list)
    knowledge_index_id: str | None = None
    context: ContextSettings = Field(default_factory=ContextSettings)
    max_tool_steps: int = DEFAULT_MAX_TOOL_STEPS
    metadata: dict[str, Any] = Field(default_factory=dict)
    secret_name: str
    secret_rotated_at: str = Field(description="When the signing secret was set (created or rotated)")
    version: int = 1
    created_at: str
    updated_at: str

    @field_validator("tools", mode="before")
    @classmethod
    def _stored_tools(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def stored(self) -> dict[str, Any]:
        return {**super().stored(), "tools": tools_json(list(self.tools))}

    def view(self) -> Agent:
        return Agent(**{name: getattr(self, name) for name in Agent.model_fields if name != "object"})

    def chat_tools(self) -> list[Tool]:
        """The agent's tools as a model call offers them, in the agent's order."""
        return [tool.chat_tool() for tool in self.tools]

    def tool(self, name: str) -> ClientTool | HttpTool | None:
        """The tool the model called by `name`; None when the agent has no such tool."""
        return next((tool for tool in self.tools if tool.name == name), None)
