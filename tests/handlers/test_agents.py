"""Agents through the handlers: the resource routes (by id and by name), versions, tools and
their checks, the signing secret, tenancy; and the storage's failure branches (a lost race, a
taken name, a conflict, throttling, a lost response), each forced deterministically
(tests/handlers/faults.py)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from parley.aws import clients
from parley.domain.agents import ClientTool, HttpTool
from parley.domain.chat import FunctionDefinition, Tool
from parley.domain.errors import InvalidRequest, NotFound
from parley.domain.principal import Principal
from parley.services import agents
from parley.settings import get_settings, set_settings
from parley.storage.agents import AgentRepository, version_key
from parley.storage.secrets import SecretStore
from tests.handlers.api import Api, Reply
from tests.handlers.faults import Faults, cancelled, commit_then_lose_response, error, on_table, run_first

PROJECT = "proj_agents"
ADMIN = Principal("org_agents", PROJECT, "key_admin", ("*",))
STRANGER = Principal("org_agents", "proj_other", "key_stranger", ("*",))
LOOKUP = {
    "type": "client",
    "name": "lookup_order",
    "description": "Find an order by its number",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
}
REFUND = {
    "type": "http",
    "name": "refund",
    "url": "http://127.0.0.1:9/refund",
    "parameters": {"type": "object", "properties": {"amount": {"type": "number", "exclusiveMinimum": 0}}},
}


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, ADMIN)


@pytest.fixture(autouse=True)
def _no_backoff() -> Any:
    """Lost races retry at once (the backoff's length is not what these tests are about)."""
    agents.set_deps(agents.Deps(sleep=lambda seconds: None))
    yield
    agents.set_deps(None)


def create(api: Api, name: str = "support_agent", principal: Principal | None = None, **fields: Any) -> dict[str, Any]:
    reply = api.call("agents_create", {"name": name, **fields}, principal=principal)
    assert reply.status == 201, reply.body
    assert reply.headers.get("Cache-Control") == "no-store"
    body: dict[str, Any] = reply.body
    return body


def get(api: Api, ref: str, **query: str) -> Reply:
    return api.call("agents_get", path={"agent_id": ref}, query=query or None)


def patch(api: Api, ref: str, body: dict[str, Any]) -> Reply:
    return api.call("agents_update", body, path={"agent_id": ref})


def versions(api: Api, ref: str, **query: str) -> Reply:
    return api.call("agent_versions_list", path={"agent_id": ref}, query=query or None)


def error_of(reply: Reply) -> tuple[int, str, str, str | None]:
    error = reply.body["error"]
    return reply.status, error["type"], error["code"], error["param"]


def chats_items() -> list[dict[str, Any]]:
    table = AgentRepository().table
    items: list[dict[str, Any]] = clients().dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    return items


def agent_keys() -> list[tuple[str, str]]:
    """The (pk, sk) of every agent item: heads, versions, name claims, markers."""
    keys = [(i["pk"]["S"], i["sk"]["S"]) for i in chats_items()]
    return sorted(k for k in keys if "agent" in k[0])


def live_secrets() -> list[str]:
    listed = clients().secretsmanager.list_secrets(IncludePlannedDeletion=True)["SecretList"]
    return sorted(s["Name"] for s in listed if "DeletedDate" not in s and "/agents/" in s["Name"])


def is_transaction(request: dict[str, Any]) -> bool:
    return on_table("chats")(request)


# --- the resource ----------------------------------------------------------------------------------


def test_create_get_list_update_delete(api: Api) -> None:
    made = create(
        api,
        description="Answers billing questions",
        model="echo",
        system_prompt="You are Acme's support agent.",
        tools=[LOOKUP, REFUND],
        knowledge_index_id="idx_01JZ00000000000000000000AA",
        context={"strategy": "summarize", "max_messages": 40},
        metadata={"team": "billing"},
    )
    assert made["id"].startswith("agt_") and len(made["id"]) == 30
    assert (made["object"], made["name"], made["version"], made["max_tool_steps"]) == ("agent", "support_agent", 1, 8)
    assert made["signing_secret"].startswith("whsec_")
    assert made["tools"][0] == LOOKUP
    assert made["tools"][1] == {**REFUND, "description": None, "timeout_seconds": 10, "max_response_bytes": 100_000}
    assert made["context"] == {"strategy": "summarize", "max_tokens": None, "max_messages": 40, "summarize_after": None}
    assert made["knowledge_index_id"] == "idx_01JZ00000000000000000000AA"
    assert made["created_at"] == made["updated_at"]
    shown = {k: v for k, v in made.items() if k != "signing_secret"}
    assert get(api, made["id"]).body == shown
    assert get(api, "support_agent").body == shown  # by name

    other = create(api, "triage")
    first = api.call("agents_list", query={"limit": "1"})
    assert [a["id"] for a in first.body["data"]] == [other["id"]]  # newest first
    assert first.body["has_more"] is True
    rest = api.call("agents_list", query={"limit": "1", "cursor": first.body["next_cursor"]})
    assert [a["id"] for a in rest.body["data"]] == [made["id"]]
    assert rest.body["next_cursor"] is None

    patched = patch(api, "support_agent", {"description": None, "max_tool_steps": 3, "metadata": {"team": "ops"}})
    assert patched.status == 200, patched.body
    assert (patched.body["description"], patched.body["max_tool_steps"], patched.body["version"]) == (None, 3, 2)
    assert patched.body["metadata"] == {"team": "ops"}
    assert patched.body["system_prompt"] == "You are Acme's support agent."  # untouched
    assert patched.body["updated_at"] >= made["updated_at"]
    assert patched.body["created_at"] == made["created_at"]

    deleted = api.call("agents_delete", path={"agent_id": "support_agent"})
    assert deleted.body == {"id": made["id"], "object": "agent", "deleted": True}
    for ref in (made["id"], "support_agent"):
        gone = get(api, ref)
        assert error_of(gone) == (404, "not_found_error", "agent_not_found", None)
    assert api.call("agents_delete", path={"agent_id": made["id"]}).status == 404
    # head, name, every version and the secret went; the other agent is whole
    assert not [k for k in agent_keys() if made["id"] in k[0] or made["id"] in k[1] or k[1] == "support_agent"]
    assert [name.rsplit("/", 1)[1] for name in live_secrets()] == [other["id"]]
    assert create(api, "support_agent")["version"] == 1  # the name is free again


def test_a_name_is_a_slug_and_the_fields_are_bounded(api: Api) -> None:
    for body, param in (
        ({"name": "Support Agent"}, "name"),
        ({"name": "-support"}, "name"),
        ({"name": "a" * 65}, "name"),
        ({"name": "ok", "max_tool_steps": 26}, "max_tool_steps"),
        ({"name": "ok", "max_tool_steps": 0}, "max_tool_steps"),
        ({"name": "ok", "knowledge_index_id": "doc_01JZ00000000000000000000AA"}, "knowledge_index_id"),
        ({"name": "ok", "metadata": {"x": "y" * 9000}}, "metadata"),
        ({"name": "ok", "description": "d" * 1025}, "description"),
        ({"name": "ok", "tools": [{**LOOKUP, "timeout_seconds": 5}]}, "tools[0].timeout_seconds"),
        ({"name": "ok", "tools": [LOOKUP, {**REFUND, "timeout_seconds": 31}]}, "tools[1].timeout_seconds"),
        ({"name": "ok", "tools": [{**REFUND, "max_response_bytes": 1_000_001}]}, "tools[0].max_response_bytes"),
        ({"name": "ok", "tools": [{**LOOKUP, "type": "mcp"}]}, "tools[0]"),
        ({"name": "ok", "tools": [{**LOOKUP, "name": "has space"}]}, "tools[0].name"),
        ({"name": "ok", "tools": [{**LOOKUP, "description": "d" * 1025}]}, "tools[0].description"),
        ({"name": "ok", "tools": [{**LOOKUP, "name": f"t{i}"} for i in range(33)]}, "tools"),
    ):
        reply = api.call("agents_create", body)
        assert reply.status == 400, (body, reply.body)
        assert reply.body["error"]["param"] == param, (body, reply.body)
    assert create(api, "a" * 64, max_tool_steps=25)["max_tool_steps"] == 25
    assert create(api, "0_support-2", tools=[{**LOOKUP, "name": f"t{i}"} for i in range(32)])["version"] == 1
    assert agent_keys().count((f"{PROJECT}#agent_names", "ok")) == 0
    assert len(live_secrets()) == 2  # none for the refused ones


def test_a_patch_cannot_remove_what_an_agent_needs_and_a_patch_of_nothing_writes_no_version(api: Api) -> None:
    made = create(api, system_prompt="v1", tools=[LOOKUP])
    for name in ("name", "tools", "max_tool_steps"):
        refused = patch(api, made["id"], {name: None})
        assert error_of(refused) == (400, "invalid_request_error", "invalid_request", name)
    same = patch(api, made["id"], {"system_prompt": "v1", "tools": [LOOKUP], "name": "support_agent"})
    assert same.status == 200
    assert same.body["version"] == 1
    assert [v["version"] for v in versions(api, made["id"]).body["data"]] == [1]
    cleared = patch(api, made["id"], {"system_prompt": None, "tools": [], "context": None})
    assert (cleared.body["system_prompt"], cleared.body["tools"], cleared.body["version"]) == (None, [], 2)


def test_an_unknown_provider_is_400(api: Api) -> None:
    reply = api.call("agents_create", {"name": "x", "provider_id": "aip_01JZ00000000000000000000AA"})
    assert error_of(reply) == (400, "invalid_request_error", "provider_not_found", "provider_id")
    provider = api.call("providers_create", {"type": "echo", "name": "echo-main", "default_model": "echo"}).body["id"]
    made = create(api, "x", provider_id=provider, model="echo")
    assert made["provider_id"] == provider
    assert error_of(patch(api, "x", {"provider_id": "aip_01JZ00000000000000000000AB"}))[2] == "provider_not_found"


# --- lookups the conversation code makes ---------------------------------------------------------


def test_the_service_resolves_an_agent_by_id_and_by_name(api: Api) -> None:
    made = create(api, system_prompt="Be brief.", tools=[LOOKUP, REFUND])
    by_id = agents.resolve(ADMIN, made["id"])
    by_name = agents.resolve(ADMIN, "support_agent")
    assert by_id == by_name
    assert (by_id.id, by_id.name, by_id.version, by_id.system_prompt) == (made["id"], "support_agent", 1, "Be brief.")
    assert by_id.chat_tools() == [
        Tool(
            type="function",
            function=FunctionDefinition(
                name="lookup_order", description="Find an order by its number", parameters=LOOKUP["parameters"]
            ),
        ),
        Tool(type="function", function=FunctionDefinition(name="refund", parameters=REFUND["parameters"])),
    ]
    refund = by_id.tool("refund")
    assert isinstance(refund, HttpTool)
    assert (refund.url, refund.timeout_seconds, refund.max_response_bytes) == ("http://127.0.0.1:9/refund", 10, 100_000)
    assert isinstance(by_id.tool("lookup_order"), ClientTool)
    assert by_id.tool("nope") is None
    for ref in ("nobody", "agt_01JZ00000000000000000000AA", "", "Support_Agent", "support_agent/x", "a" * 300):
        with pytest.raises(NotFound) as missing:
            agents.resolve(ADMIN, ref)
        assert missing.value.code == "agent_not_found"
    with pytest.raises(NotFound):
        agents.resolve(STRANGER, made["id"])
    with pytest.raises(NotFound):
        agents.resolve(STRANGER, "support_agent")
    # renamed: the new name finds it, the old one nothing
    patch(api, made["id"], {"name": "billing_agent"})
    assert agents.resolve(ADMIN, "billing_agent").id == made["id"]
    with pytest.raises(NotFound):
        agents.resolve(ADMIN, "support_agent")


def test_tool_schemas_come_back_exactly_as_given(api: Api) -> None:
    """Stored as JSON, not as DynamoDB maps (which would drop the nulls and turn 1.0 into 1)."""
    schema = {
        "type": "object",
        "properties": {
            "note": {"type": ["string", "null"], "default": None},
            "ratio": {"type": "number", "maximum": 1.0, "multipleOf": 0.01},
            "huge": {"type": "integer", "maximum": 10**40},
            "": {"const": {}},
        },
        "additionalProperties": False,
    }
    made = create(api, tools=[{**LOOKUP, "parameters": schema}])
    assert get(api, made["id"]).body["tools"][0]["parameters"] == schema
    tool = agents.resolve(ADMIN, made["id"]).tool("lookup_order")
    assert tool is not None
    assert json.dumps(tool.parameters, sort_keys=True) == json.dumps(schema, sort_keys=True)


# --- versions --------------------------------------------------------------------------------------


def test_each_update_is_a_version_and_every_version_can_be_read(api: Api) -> None:
    made = create(api, system_prompt="v1", tools=[LOOKUP])
    assert patch(api, made["id"], {"system_prompt": "v2"}).body["version"] == 2
    third = patch(api, "support_agent", {"system_prompt": "v3", "tools": [REFUND], "name": "billing_agent"})
    assert (third.body["version"], third.body["name"]) == (3, "billing_agent")

    one = get(api, made["id"], version="1")
    assert one.status == 200, one.body
    assert (one.body["version"], one.body["system_prompt"], one.body["name"]) == (1, "v1", "support_agent")
    assert one.body["tools"] == [LOOKUP]
    assert get(api, "billing_agent", version="2").body["system_prompt"] == "v2"
    assert get(api, made["id"]).body["system_prompt"] == "v3"
    assert get(api, made["id"], version="3").body == get(api, made["id"]).body
    assert agents.version_of(ADMIN, made["id"], 1).system_prompt == "v1"
    assert agents.version_of(ADMIN, made["id"], 3).tool("refund") is not None
    for missing in ("4", "999"):
        assert error_of(get(api, made["id"], version=missing)) == (404, "not_found_error", "agent_not_found", None)
    assert get(api, made["id"], version="0").status == 400
    with pytest.raises(NotFound) as absent:
        agents.version_of(ADMIN, made["id"], 4)
    assert absent.value.code == "agent_not_found"

    listed = versions(api, made["id"], limit="2")
    assert [v["version"] for v in listed.body["data"]] == [3, 2]  # newest first
    assert [v["system_prompt"] for v in listed.body["data"]] == ["v3", "v2"]
    rest = versions(api, "billing_agent", limit="2", cursor=listed.body["next_cursor"])
    assert [v["version"] for v in rest.body["data"]] == [1]
    assert rest.body["next_cursor"] is None
    # a cursor of one agent's versions is refused by another's
    other = create(api, "other")
    patch(api, "other", {"system_prompt": "x"})
    foreign = versions(api, other["id"], limit="1", cursor=listed.body["next_cursor"])
    assert error_of(foreign) == (400, "invalid_request_error", "invalid_cursor", "cursor")

    api.call("agents_delete", path={"agent_id": made["id"]})
    with pytest.raises(NotFound) as deleted:
        agents.version_of(ADMIN, made["id"], 1)
    assert deleted.value.code == "agent_not_found"
    assert versions(api, made["id"]).status == 404


def test_a_delete_removes_every_version_in_batches(api: Api) -> None:
    made = create(api)
    repository = AgentRepository()
    head = repository.get(PROJECT, made["id"])
    assert head is not None
    for n in range(2, 131):  # more than a query page (100) and many batches (25)
        assert repository.versions.insert(head.model_copy(update={"version": n}))
    assert len(versions(api, made["id"], limit="100").body["data"]) == 100
    assert api.call("agents_delete", path={"agent_id": made["id"]}).status == 200
    assert agent_keys() == []


# --- names -----------------------------------------------------------------------------------------


def test_a_taken_name_is_409_on_create_and_on_rename(api: Api) -> None:
    first = create(api, system_prompt="first")
    taken = api.call("agents_create", {"name": "support_agent", "system_prompt": "second"})
    assert error_of(taken) == (409, "conflict_error", "agent_name_taken", None)
    assert "support_agent" in taken.body["error"]["message"]
    assert len(live_secrets()) == 1  # the refused create left no secret behind
    second = create(api, "triage")
    renamed = patch(api, second["id"], {"name": "support_agent", "system_prompt": "mine"})
    assert error_of(renamed)[:3] == (409, "conflict_error", "agent_name_taken")
    assert get(api, second["id"]).body["version"] == 1  # nothing of the refused update was stored
    assert get(api, "support_agent").body["system_prompt"] == "first"
    assert get(api, "support_agent").body["id"] == first["id"]
    # another project may use the name
    assert create(api, "support_agent", principal=STRANGER)["name"] == "support_agent"


def test_a_rename_releases_the_old_name(api: Api) -> None:
    made = create(api)
    patch(api, made["id"], {"name": "billing_agent"})
    assert (f"{PROJECT}#agent_names", "support_agent") not in agent_keys()
    assert create(api, "support_agent")["id"] != made["id"]
    assert get(api, "billing_agent").body["id"] == made["id"]


# --- tools -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "why"),
    [
        ({"type": "object", "properties": {"n": {"type": "nombre"}}}, "properties.n.type"),
        ({"type": "object", "required": "order_id"}, "required"),
        ({"type": "object", "properties": {"n": {"minimum": "zero"}}}, "properties.n.minimum"),
        ({"type": "array", "items": {"type": "string"}}, '"type" is "object"'),
        ({"properties": {"n": {"type": "string"}}}, '"type" is "object"'),
    ],
)
def test_a_bad_tool_schema_is_400_naming_the_tool(api: Api, parameters: dict[str, Any], why: str) -> None:
    body = {"name": "x", "tools": [LOOKUP, {**REFUND, "parameters": parameters}]}
    reply = api.call("agents_create", body)
    assert error_of(reply) == (400, "invalid_request_error", "invalid_tool_schema", "tools[1].parameters")
    assert why in reply.body["error"]["message"]
    made = create(api, "y", tools=[LOOKUP])
    patched = patch(api, made["id"], {"tools": [{**LOOKUP, "parameters": parameters}]})
    assert error_of(patched) == (400, "invalid_request_error", "invalid_tool_schema", "tools[0].parameters")
    assert get(api, made["id"]).body["version"] == 1


def test_tool_names_are_unique_within_an_agent(api: Api) -> None:
    reply = api.call("agents_create", {"name": "x", "tools": [LOOKUP, REFUND, {**LOOKUP, "name": "refund"}]})
    assert error_of(reply) == (400, "invalid_request_error", "duplicate_tool_name", "tools[2].name")
    assert "refund" in reply.body["error"]["message"]
    # the same name in two agents is fine
    create(api, "a", tools=[LOOKUP])
    create(api, "b", tools=[LOOKUP])


def test_the_tools_together_are_bounded(api: Api) -> None:
    big = {"type": "object", "description": "x" * 5000}
    tools = [{**LOOKUP, "name": f"t{i}", "parameters": big} for i in range(30)]
    reply = api.call("agents_create", {"name": "x", "tools": tools})
    assert error_of(reply) == (400, "invalid_request_error", "tools_too_large", "tools")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://example.com/tool", "https"),
        ("https://10.0.0.1/tool", "private"),
        ("https://169.254.169.254/latest/meta-data", "private"),
        ("https://[fd00::1]/tool", "private"),
        ("ftp://example.com/tool", "http(s)"),
        ("https://user:pw@example.com/tool", "credentials"),
        ("https://no-such-host.invalid/tool", "does not resolve"),
    ],
)
def test_an_http_tool_url_the_egress_guard_refuses_is_400(api: Api, url: str, why: str) -> None:
    reply = api.call("agents_create", {"name": "x", "tools": [LOOKUP, {**REFUND, "url": url}]})
    assert error_of(reply) == (400, "invalid_request_error", "invalid_url", "tools[1].url")
    assert why in reply.body["error"]["message"]
    made = create(api, "y")
    assert error_of(patch(api, made["id"], {"tools": [{**REFUND, "url": url}]}))[3] == "tools[0].url"


def test_http_tool_urls_follow_the_webhook_rules(api: Api) -> None:
    """Loopback in local mode only; outside it, https to hosts that resolve to public addresses."""
    made = create(api, tools=[{**REFUND, "url": "http://127.0.0.1:8080/refund/"}])
    assert made["tools"][0]["url"] == "http://127.0.0.1:8080/refund"  # normalised as webhooks' are
    set_settings(get_settings().with_(stage="prod"))
    loopback = api.call("agents_create", {"name": "x", "tools": [REFUND]})
    assert error_of(loopback)[2:] == ("invalid_url", "tools[0].url")
    public = agents.Deps(resolver=lambda host, port: ["93.184.215.14"], sleep=lambda s: None)
    rebinding = agents.Deps(resolver=lambda host, port: ["93.184.215.14", "10.1.2.3"], sleep=lambda s: None)
    agents.set_deps(public)
    assert create(api, "x", tools=[{**REFUND, "url": "https://tools.example.com/refund"}])["version"] == 1
    agents.set_deps(rebinding)
    with pytest.raises(InvalidRequest) as refused:
        agents._check_tools([HttpTool(type="http", name="t", url="https://tools.example.com/t")], rebinding)
    assert refused.value.param == "tools[0].url"


# --- the signing secret ----------------------------------------------------------------------------


def test_the_signing_secret_is_only_in_the_create_and_rotate_answers(
    api: Api, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    made = create(api, tools=[REFUND])
    path = {"agent_id": made["id"]}
    assert agents.signing_secret(ADMIN, made["id"]) == made["signing_secret"]
    assert agents.signing_secret(ADMIN, "support_agent") == made["signing_secret"]
    rotated = api.call("agents_rotate_secret", path=path)
    assert rotated.status == 200, rotated.body
    assert rotated.headers.get("Cache-Control") == "no-store"
    new = rotated.body["signing_secret"]
    assert new.startswith("whsec_") and new != made["signing_secret"]
    assert rotated.body["version"] == 1  # the definition did not change
    assert agents.signing_secret(ADMIN, made["id"]) == new
    replies = [
        get(api, made["id"]),
        get(api, made["id"], version="1"),
        api.call("agents_list"),
        versions(api, made["id"]),
        patch(api, made["id"], {"description": "ops"}),
        api.call("agents_create", {"name": "support_agent"}),  # an error naming the agent
    ]
    shown = json.dumps([r.body for r in replies])
    stored = json.dumps(
        [clients().dynamodb.scan(TableName=t)["Items"] for t in clients().dynamodb.list_tables()["TableNames"]]
    )
    out = capsys.readouterr()
    logs = caplog.text + out.out + out.err
    for secret in (made["signing_secret"], new):
        for where, text in (("a response", shown), ("DynamoDB", stored), ("the logs", logs)):
            assert secret not in text, f"a signing secret is in {where}"
            assert secret.removeprefix("whsec_") not in text, f"a signing key is in {where}"
    assert all("signing_secret" not in json.dumps(r.body) for r in replies)
    assert "secret_name" not in shown


def test_a_rotation_elsewhere_is_seen_past_this_processs_cache(api: Api) -> None:
    made = create(api)
    here = agents.Deps(secrets=SecretStore(), sleep=lambda s: None)
    assert agents.signing_secret(ADMIN, made["id"], here) == made["signing_secret"]  # now cached here
    rotated = agents.rotate_secret(ADMIN, made["id"], agents.Deps(secrets=SecretStore()))  # another process
    assert agents.signing_secret(ADMIN, made["id"], here) == rotated.signing_secret


def test_an_idempotency_key_never_makes_a_second_agent(api: Api) -> None:
    body = {"name": "support_agent", "system_prompt": "Hi"}
    first = api.call("agents_create", body, headers={"Idempotency-Key": "create-1"})
    assert first.status == 201
    again = api.call("agents_create", body, headers={"Idempotency-Key": "create-1"})
    assert error_of(again)[:3] == (409, "conflict_error", "agent_already_created")
    assert first.body["id"] in again.body["error"]["message"]
    assert "rotate-secret" in again.body["error"]["message"]
    other = api.call("agents_create", {**body, "name": "x"}, headers={"Idempotency-Key": "create-1"})
    assert error_of(other)[2] == "idempotency_key_reused"
    assert len(api.call("agents_list").body["data"]) == 1
    assert len(live_secrets()) == 1


def test_another_projects_key_gets_404_for_ids_and_names(api: Api) -> None:
    made = create(api, tools=[LOOKUP])
    before = agent_keys(), live_secrets()
    for ref in (made["id"], "support_agent"):
        path = {"agent_id": ref}
        for function, body, query in (
            ("agents_get", None, None),
            ("agents_get", None, {"version": "1"}),
            ("agents_update", {"system_prompt": "mine now", "name": "stolen"}, None),
            ("agents_delete", None, None),
            ("agent_versions_list", None, None),
            ("agents_rotate_secret", None, None),
        ):
            reply = api.call(function, body, path=path, query=query, principal=STRANGER)
            assert error_of(reply)[:3] == (404, "not_found_error", "agent_not_found"), (function, ref, reply.body)
    assert api.call("agents_list", principal=STRANGER).body["data"] == []
    assert (agent_keys(), live_secrets()) == before
    assert get(api, made["id"]).body["version"] == 1
    with pytest.raises(NotFound):
        agents.signing_secret(STRANGER, made["id"])


# --- what real DynamoDB does: races, cancellations, throttling, lost responses ---------------------


def test_concurrent_updates_both_land_as_versions(api: Api, faults: Faults) -> None:
    made = create(api, system_prompt="v1", max_tool_steps=8)

    def competitor() -> None:
        assert patch(api, made["id"], {"system_prompt": "theirs"}).body["version"] == 2

    faults.inject("transact_write_items", run_first(competitor), when=is_transaction)
    mine = patch(api, made["id"], {"max_tool_steps": 2})
    assert mine.status == 200, mine.body
    # ours lost the race on version 1, read version 2 and wrote 3 on top of it: nothing lost
    assert (mine.body["version"], mine.body["system_prompt"], mine.body["max_tool_steps"]) == (3, "theirs", 2)
    listed = versions(api, made["id"]).body["data"]
    assert [(v["version"], v["system_prompt"], v["max_tool_steps"]) for v in listed] == [
        (3, "theirs", 2),
        (2, "theirs", 8),
        (1, "v1", 8),
    ]


def test_an_update_that_keeps_losing_is_409_and_stores_nothing(api: Api, faults: Faults) -> None:
    made = create(api, system_prompt="v1")
    before = agent_keys()
    lost = faults.inject("transact_write_items", cancelled("ConditionalCheckFailed", "None"), times=agents.UPDATE_TRIES)
    reply = patch(api, made["id"], {"system_prompt": "v2"})
    assert error_of(reply) == (409, "conflict_error", "concurrent_update", None)
    assert lost.fired == agents.UPDATE_TRIES
    assert agent_keys() == before
    assert get(api, made["id"]).body["system_prompt"] == "v1"


def test_a_rotation_between_the_read_and_the_write_of_an_update_is_kept(api: Api, faults: Faults) -> None:
    made = create(api)
    rotated: list[str] = []

    def rotate() -> None:
        rotated.append(api.call("agents_rotate_secret", path={"agent_id": made["id"]}).body["signing_secret"])

    faults.inject("transact_write_items", run_first(rotate), when=is_transaction)
    assert patch(api, made["id"], {"system_prompt": "v2"}).body["version"] == 2
    head = AgentRepository().get(PROJECT, made["id"])
    assert head is not None and head.secret_rotated_at != made["created_at"]  # the update did not undo it
    assert agents.signing_secret(ADMIN, made["id"]) == rotated[0]


@pytest.mark.parametrize(
    ("reasons", "status", "code"),
    [
        # the head moved (once): read again and write on top
        (("ConditionalCheckFailed", "None"), 200, None),
        # another transaction held an item (once): write_with_retry sends it again
        (("TransactionConflict", "None"), 200, None),
        (("ThrottlingError", "None"), 503, "storage_throttled"),
        (("None", "ProvisionedThroughputExceeded"), 503, "storage_throttled"),
        (("ValidationError", "None"), 413, "item_too_large"),
    ],
)
def test_an_updates_cancellation_reasons_each_mean_what_they_say(
    api: Api, faults: Faults, reasons: tuple[str, ...], status: int, code: str | None
) -> None:
    made = create(api, system_prompt="v1")
    faults.inject("transact_write_items", cancelled(*reasons), when=is_transaction)
    reply = patch(api, made["id"], {"system_prompt": "v2"})
    assert reply.status == status, reply.body
    if code is None:
        assert reply.body["version"] == 2
        assert [v["version"] for v in versions(api, made["id"]).body["data"]] == [2, 1]
    else:
        assert reply.body["error"]["code"] == code
        assert get(api, made["id"]).body["version"] == 1
    if status == 503:
        assert reply.headers["Retry-After"] == "1"


def test_a_rename_whose_claim_fails_is_409_name_taken(api: Api, faults: Faults) -> None:
    made = create(api)
    faults.inject("transact_write_items", cancelled("None", "None", "ConditionalCheckFailed", "None"))
    reply = patch(api, made["id"], {"name": "billing_agent"})
    assert error_of(reply)[:3] == (409, "conflict_error", "agent_name_taken")
    assert get(api, "support_agent").body["version"] == 1


def test_a_conflict_that_does_not_clear_is_503(api: Api, faults: Faults) -> None:
    made = create(api)
    faults.inject("transact_write_items", cancelled("TransactionConflict", "None"), times=100)
    reply = patch(api, made["id"], {"system_prompt": "v2"})
    assert error_of(reply)[:3] == (503, "api_error", "storage_throttled")


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (cancelled("None", "None", "ConditionalCheckFailed"), 409, "agent_name_taken"),
        (cancelled("ThrottlingError", "None", "None"), 503, "storage_throttled"),
        (error("ThrottlingException"), 503, "storage_throttled"),
        (cancelled("None", "ValidationError", "None"), 413, "item_too_large"),
        (cancelled("TransactionConflict", "None", "None"), 201, None),
    ],
)
def test_a_creates_failures_leave_no_agent_and_no_secret(
    api: Api, faults: Faults, fault: Any, status: int, code: str | None
) -> None:
    faults.inject("transact_write_items", fault, when=is_transaction)
    reply = api.call("agents_create", {"name": "support_agent"})
    assert reply.status == status, reply.body
    if code is None:
        assert reply.body["version"] == 1
        assert len(live_secrets()) == 1
        return
    assert reply.body["error"]["code"] == code
    assert agent_keys() == []
    assert live_secrets() == []


def test_a_create_whose_response_was_lost_is_answered_from_what_it_stored(api: Api, faults: Faults) -> None:
    # the write commits, the answer is lost, the SDK sends it again and (no token honoured) it
    # fails its conditions: the head is this create's own, so the create succeeded
    faults.inject("transact_write_items", commit_then_lose_response(sdk_retries=True, tokens_honoured=False))
    made = create(api)
    assert get(api, made["id"]).body["version"] == 1
    assert agents.signing_secret(ADMIN, made["id"]) == made["signing_secret"]
    assert len(live_secrets()) == 1


def test_a_delete_that_lost_a_race_reads_again(api: Api, faults: Faults) -> None:
    made = create(api)

    def rename() -> None:
        assert patch(api, made["id"], {"name": "billing_agent"}).status == 200

    faults.inject("transact_write_items", run_first(rename), when=is_transaction)
    assert api.call("agents_delete", path={"agent_id": "support_agent"}).status == 200
    # the delete removed the new name's claim, not the old one's: both names are free
    assert agent_keys() == []
    assert create(api, "billing_agent")["version"] == 1


def test_a_throttled_delete_is_503_and_deletes_nothing(api: Api, faults: Faults) -> None:
    made = create(api)
    before = agent_keys(), live_secrets()
    faults.inject("transact_write_items", cancelled("None", "ThrottlingError"), when=is_transaction)
    reply = api.call("agents_delete", path={"agent_id": made["id"]})
    assert error_of(reply)[:3] == (503, "api_error", "storage_throttled")
    assert (agent_keys(), live_secrets()) == before


def test_version_keys_sort_as_versions() -> None:
    assert sorted(version_key(n) for n in (10, 9, 100, 1)) == [version_key(n) for n in (1, 9, 10, 100)]
