"""The agent's domain alone: tool schemas, the stored record's round trip, the chat tools."""

from __future__ import annotations

from typing import Any

import pytest

from parley.domain.agents import AgentRecord, ClientTool, HttpTool, check_parameters, check_tools
from parley.domain.errors import InvalidRequest


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def test_a_schema_nested_past_the_validators_reach_is_a_400_not_a_crash() -> None:
    check_parameters(nested(30), "tools[0].parameters")  # the deepest a request body can carry
    with pytest.raises(InvalidRequest) as deep:
        check_parameters(nested(400), "tools[0].parameters")
    assert (deep.value.code, deep.value.param) == ("invalid_tool_schema", "tools[0].parameters")


def test_check_tools_names_the_first_offender() -> None:
    good = ClientTool(type="client", name="a")
    bad = HttpTool(type="http", name="b", url="https://example.com", parameters={"type": "object", "minProperties": -1})
    with pytest.raises(InvalidRequest) as invalid:
        check_tools([good, bad])
    assert invalid.value.param == "tools[1].parameters"
    with pytest.raises(InvalidRequest) as twice:
        check_tools([good, bad, good])
    assert twice.value.param == "tools[1].parameters"  # in order: the schema of tools[1] first
    check_tools([good, ClientTool(type="client", name="A")])  # names are case-sensitive


def test_a_record_stores_its_tools_as_json_and_reads_them_back() -> None:
    schema = {"type": "object", "properties": {"x": {"default": None, "maximum": 1.5}}}
    record = AgentRecord(
        id="agt_01JZ00000000000000000000AA",
        project_id="p",
        name="a",
        tools=[
            ClientTool(type="client", name="c", parameters=schema),
            HttpTool(type="http", name="h", url="https://e.x"),
        ],
        context={"strategy": "full"},
        secret_name="s",
        secret_rotated_at="t",
        created_at="t",
        updated_at="t",
    )
    stored = record.stored()
    assert isinstance(stored["tools"], str)
    again = AgentRecord(**stored)
    assert again == record
    assert again.tool("c") == record.tools[0]
    assert [t.function.name for t in again.chat_tools()] == ["c", "h"]
    assert again.chat_tools()[0].function.parameters == schema
    assert again.context.strategy == "full"
