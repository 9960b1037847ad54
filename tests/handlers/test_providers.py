"""AI provider resources through their handlers, on moto (DynamoDB + Secrets Manager)."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest

from parley import egress
from parley.aws import clients
from parley.domain.principal import Principal
from parley.services import registry
from parley.settings import Settings, get_settings, set_settings
from parley.storage.secrets import ProviderSecret
from tests.conftest import PROVIDER_KEYS
from tests.handlers import upstream
from tests.handlers.api import Api
from tests.handlers.faults import Faults, cancelled, on_table

KEY = PROVIDER_KEYS[0]
OWNER = Principal("org_a", "proj_a", "key_a", ("*",))
STRANGER = Principal("org_b", "proj_b", "key_b", ("*",))


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    return Api(load_handler, sample_event, lambda_context, OWNER)


def secret_id(provider_id: str) -> str:
    return f"parley/local/proj_a/providers/{provider_id}"


def stored_secret(provider_id: str) -> ProviderSecret:
    return ProviderSecret.decode(
        clients().secretsmanager.get_secret_value(SecretId=secret_id(provider_id))["SecretString"]
    )


def create(api: Api, **fields: Any) -> Any:
    body = {"type": "openai", "name": "main", "api_key": KEY, "default_model": "gpt-4o-mini", **fields}
    return api.call("providers_create", body)


def test_create_stores_the_key_in_secrets_manager_and_never_returns_it(api: Api) -> None:
    created = create(api)
    assert created.status == 201
    provider = created.body
    assert provider["id"].startswith("aip_")
    assert provider["api_key_set"] is True
    assert provider["api_key_last4"] == "1234"
    assert provider["base_url"] == "https://api.openai.com/v1"
    assert KEY not in json.dumps(provider)
    assert stored_secret(provider["id"]) == ProviderSecret(api_key=KEY)
    for function, kwargs in [("providers_get", {"path": {"provider_id": provider["id"]}}), ("providers_list", {})]:
        reply = api.call(function, **kwargs)
        assert reply.status == 200
        assert KEY not in json.dumps(reply.body)


def test_list_is_cursor_paginated(api: Api) -> None:
    ids = {create(api, name=f"p{i}").body["id"] for i in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        page = api.call("providers_list", query={"limit": "2", **({"cursor": cursor} if cursor else {})}).body
        assert page["object"] == "list"
        assert len(page["data"]) <= 2
        seen += [p["id"] for p in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(ids)
    assert api.call("providers_list", query={"limit": "0"}).status == 400
    assert api.call("providers_list", query={"cursor": "garbage"}).body["error"]["param"] == "cursor"


def test_names_are_unique_per_project(api: Api) -> None:
    create(api)
    clash = create(api, name="MAIN")
    assert clash.status == 409
    assert clash.body["error"]["code"] == "provider_name_taken"
    assert create(api, name="main").status == 409
    other_project = api.call("providers_create", {"type": "echo", "name": "main"}, principal=STRANGER)
    assert other_project.status == 201


def test_another_projects_provider_is_404(api: Api) -> None:
    provider = create(api).body
    for function in ("providers_get", "providers_delete"):
        reply = api.call(function, path={"provider_id": provider["id"]}, principal=STRANGER)
        assert reply.status == 404
        assert reply.body["error"]["type"] == "not_found_error"
    assert api.call("providers_get", path={"provider_id": "aip_nonsense"}).status == 404


def test_patch_rotates_the_key_renames_and_sets_default(api: Api) -> None:
    provider = create(api).body
    updated = api.call(
        "providers_update",
        {"api_key": PROVIDER_KEYS[1], "name": "renamed", "is_default": True, "default_model": None},
        path={"provider_id": provider["id"]},
    )
    assert updated.status == 200, updated.body
    assert updated.body["api_key_last4"] == "9876"
    assert updated.body["name"] == "renamed"
    assert updated.body["is_default"] is True
    assert updated.body["default_model"] is None
    assert updated.body["version"] == 2
    assert stored_secret(provider["id"]).api_key == PROVIDER_KEYS[1]
    assert create(api, name="main").status == 201  # the old name is free again
    assert create(api, name="renamed").status == 409


def test_default_provider_moves_and_is_cleared_on_delete(api: Api) -> None:
    first = create(api, name="first", is_default=True).body
    second = create(api, name="second", is_default=True).body
    listed = {p["name"]: p["is_default"] for p in api.call("providers_list").body["data"]}
    assert listed == {"first": False, "second": True}
    assert first["is_default"] is True
    deleted = api.call("providers_delete", path={"provider_id": second["id"]})
    assert deleted.body == {"id": second["id"], "object": "ai_provider", "deleted": True}
    assert api.call("providers_get", path={"provider_id": second["id"]}).status == 404
    assert all(not p["is_default"] for p in api.call("providers_list").body["data"])
    secret = clients().secretsmanager.describe_secret(SecretId=f"parley/local/proj_a/providers/{second['id']}")
    assert "DeletedDate" in secret


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"type": "anthropic", "api_key": None}, "api_key"),
        ({"type": "bedrock", "api_key": "x"}, "api_key"),
        ({"type": "echo", "base_url": "https://example.com"}, "base_url"),
        ({"api_version": "2024-10-21", "type": "anthropic"}, "api_version"),
        ({"region": "us-east-1"}, "region"),
        ({"name": "has spaces"}, "name"),
        ({"headers": {"Authorization": "x"}}, "headers"),
        ({"fallbacks": [{"provider_id": "aip_01JZ00000000000000000000AA"}]}, "fallbacks[0].provider_id"),
        ({"type": "gemini"}, "type"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_providers_are_400_naming_the_field(api: Api, fields: dict[str, Any], param: str) -> None:
    reply = create(api, **fields)
    assert reply.status == 400, reply.body
    assert reply.body["error"]["param"] == param


@pytest.mark.parametrize(
    ("url", "addresses", "why"),
    [
        ("http://api.example.com/v1", ["93.184.216.34"], "must use https"),
        ("https://169.254.169.254/latest", [], "non-public address"),
        ("https://internal.example.com", ["10.0.0.7"], "non-public address"),
        ("https://sneaky.example.com", ["93.184.216.34", "127.0.0.1"], "non-public address"),
        ("https://v6.example.com", ["fd00::1"], "non-public address"),
        ("https://nat64.example.com", ["64:ff9b::a9fe:a9fe"], "non-public address"),
        ("https://user:pw@api.example.com", ["93.184.216.34"], "may not carry credentials"),
        ("https://nowhere.example.com", [], "does not resolve"),
    ],
)
def test_outside_local_mode_base_url_must_be_public_https(
    api: Api, monkeypatch: pytest.MonkeyPatch, url: str, addresses: list[str], why: str
) -> None:
    set_settings(Settings(stage="prod"))
    monkeypatch.setattr(egress, "_resolver", lambda host, port: addresses)
    reply = create(api, base_url=url)
    assert reply.status == 400
    assert reply.body["error"]["param"] == "base_url"
    assert why in reply.body["error"]["message"]
    monkeypatch.setattr(egress, "_resolver", lambda host, port: ["93.184.216.34"])
    assert (
        create(api, base_url="https://api.example.com/v1/", name="ok").body["base_url"] == "https://api.example.com/v1"
    )


def test_a_name_rebound_to_loopback_after_the_write_is_refused_at_call_time(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name is public when the provider is stored and 127.0.0.1 when it is
    called. The call is refused before any connection (a 502 in the error model, not a 500)."""
    set_settings(Settings(stage="prod"))
    monkeypatch.setattr(registry, "_http", None)  # the provider client is built in prod mode
    answers = {"now": ["93.184.216.34"]}
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return answers["now"]

    monkeypatch.setattr(egress, "_resolver", resolve)
    listener = socket.create_server(("127.0.0.1", 0))  # what the call would reach without the guard
    listener.settimeout(0.3)
    port = listener.getsockname()[1]
    try:
        provider = create(api, base_url=f"https://rebind.example.com:{port}/v1").body
        assert provider["base_url"] == f"https://rebind.example.com:{port}/v1"
        answers["now"] = ["127.0.0.1"]
        for stream in (False, True):
            body = {"provider_id": provider["id"], "messages": [{"role": "user", "content": "hi"}], "stream": stream}
            reply = api.call("completions_create", body)
            assert reply.status == 502, reply.body
            error = reply.body["error"]
            assert error["type"] == "provider_error"
            assert error["code"] == "egress_refused"
            assert "non-public address" in error["message"]
            assert "127.0.0.1" not in error["message"]
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing ever connected
    finally:
        listener.close()
    assert lookups == ["rebind.example.com"] * 3  # written once, then checked at each call's connect


def test_a_failed_write_leaves_no_orphan_secret(api: Api) -> None:
    create(api)
    before = clients().secretsmanager.list_secrets()["SecretList"]
    assert create(api).status == 409  # name taken: the record write fails after the secret was created
    after = clients().secretsmanager.list_secrets()["SecretList"]
    live = [s for s in after if "DeletedDate" not in s]
    assert len(live) == len(before)


# -- extra headers: write-only, kept in the secret ------------------------------------------------

HEADERS = {
    "X-Goog-Api-Key": PROVIDER_KEYS[2],  # the conftest's log scan covers this value too
    "Ocp-Apim-Subscription-Key": "0123456789abcdef0123",
    "Proxy-Authorization": "Basic Zm9vOg==",  # 14 characters: long enough to show its last 4
    "X-Tier": "gold",  # short: only that it is set
}


def sent_headers(api: Api, monkeypatch: pytest.MonkeyPatch, provider_id: str) -> httpx.Headers:
    """The headers of one completion call through the provider (a scripted upstream)."""
    reply = {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    seen = upstream.install(monkeypatch, [httpx.Response(200, json=reply)])
    body = {"provider_id": provider_id, "messages": [{"role": "user", "content": "hi"}]}
    answered = api.call("completions_create", body)
    assert answered.status == 200, answered.body
    (request,) = seen
    return request.headers


def raw_record(provider_id: str) -> dict[str, Any]:
    table = get_settings().table("chats")
    item = clients().dynamodb.get_item(TableName=table, Key={"pk": {"S": "proj_a#provider"}, "sk": {"S": provider_id}})
    return dict(item["Item"])


def assert_no_header_value(*documents: object) -> None:
    text = json.dumps(documents)
    for value in HEADERS.values():
        assert value not in text


def test_header_values_are_kept_in_the_secret_and_never_returned(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    created = create(api, headers=HEADERS)
    assert created.status == 201, created.body
    provider = created.body
    assert provider["headers"] == {
        "X-Goog-Api-Key": {"set": True, "last4": "XYZ9"},
        "Ocp-Apim-Subscription-Key": {"set": True, "last4": "0123"},
        "Proxy-Authorization": {"set": True, "last4": "Og=="},
        "X-Tier": {"set": True, "last4": None},
    }
    got = api.call("providers_get", path={"provider_id": provider["id"]})
    listed = api.call("providers_list")
    assert got.body["headers"] == provider["headers"]
    assert_no_header_value(created.body, got.body, listed.body, raw_record(provider["id"]))
    assert stored_secret(provider["id"]) == ProviderSecret(api_key=KEY, headers=HEADERS)

    sent = sent_headers(api, monkeypatch, provider["id"])
    for name, value in HEADERS.items():
        assert sent[name] == value
    assert sent["authorization"] == f"Bearer {KEY}"


def test_patch_merges_headers_and_never_returns_them(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = create(api, headers=HEADERS).body
    new_value = "fresh-goog-key-0000-7777"
    patch = {"headers": {"x-goog-api-key": new_value, "X-Tier": None, "X-Region": "eu-west-1a"}}
    updated = api.call("providers_update", patch, path={"provider_id": provider["id"]})
    assert updated.status == 200, updated.body
    assert set(updated.body["headers"]) == {
        "x-goog-api-key",
        "Ocp-Apim-Subscription-Key",
        "Proxy-Authorization",
        "X-Region",
    }
    assert updated.body["headers"]["x-goog-api-key"] == {"set": True, "last4": "7777"}
    assert updated.body["api_key_set"] is True
    assert new_value not in json.dumps(updated.body)
    assert_no_header_value(updated.body, raw_record(provider["id"]))

    sent = sent_headers(api, monkeypatch, provider["id"])
    assert sent["x-goog-api-key"] == new_value
    assert sent["ocp-apim-subscription-key"] == HEADERS["Ocp-Apim-Subscription-Key"]
    assert sent["x-region"] == "eu-west-1a"
    assert "x-tier" not in sent
    assert sent["authorization"] == f"Bearer {KEY}"  # the key was kept


def test_removing_the_key_keeps_the_headers_and_removing_both_deletes_the_secret(api: Api) -> None:
    provider = create(api, headers={"X-Goog-Api-Key": HEADERS["X-Goog-Api-Key"]}).body
    no_key = api.call("providers_update", {"api_key": None}, path={"provider_id": provider["id"]}).body
    assert (no_key["api_key_set"], no_key["api_key_last4"]) == (False, None)
    assert list(no_key["headers"]) == ["X-Goog-Api-Key"]
    assert stored_secret(provider["id"]) == ProviderSecret(headers={"X-Goog-Api-Key": HEADERS["X-Goog-Api-Key"]})
    cleared = api.call("providers_update", {"headers": None}, path={"provider_id": provider["id"]}).body
    assert cleared["headers"] == {}
    assert "DeletedDate" in clients().secretsmanager.describe_secret(SecretId=secret_id(provider["id"]))
    assert "secret_name" not in raw_record(provider["id"])
    # headers alone get a secret again
    again = api.call("providers_update", {"headers": {"X-Tier": "gold"}}, path={"provider_id": provider["id"]})
    assert again.status == 200, again.body
    assert again.body["headers"] == {"X-Tier": {"set": True, "last4": None}}


def test_a_failed_patch_leaves_the_secret_as_it_was(api: Api) -> None:
    create(api, name="taken")
    provider = create(api, headers=HEADERS).body
    clash = {"name": "taken", "api_key": PROVIDER_KEYS[1], "headers": {"X-Tier": None}}
    assert api.call("providers_update", clash, path={"provider_id": provider["id"]}).status == 409
    assert stored_secret(provider["id"]) == ProviderSecret(api_key=KEY, headers=HEADERS)


def test_an_older_record_with_plain_headers_is_masked_still_sent_and_moved_on_update(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records and secrets written before header values moved: plain `headers` on the record and
    a bare API key as the secret."""
    provider = create(api).body
    table = get_settings().table("chats")
    legacy = {"M": {"X-Goog-Api-Key": {"S": HEADERS["X-Goog-Api-Key"]}}}
    clients().dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": "proj_a#provider"}, "sk": {"S": provider["id"]}},
        UpdateExpression="SET headers = :h",
        ExpressionAttributeValues={":h": legacy},
    )
    clients().secretsmanager.put_secret_value(SecretId=secret_id(provider["id"]), SecretString=KEY)
    from parley.storage.secrets import secrets

    secrets()._cache.clear()  # another process wrote the old-style secret

    shown = api.call("providers_get", path={"provider_id": provider["id"]}).body
    assert shown["headers"] == {"X-Goog-Api-Key": {"set": True, "last4": "XYZ9"}}
    assert_no_header_value(shown)
    sent = sent_headers(api, monkeypatch, provider["id"])
    assert (sent["x-goog-api-key"], sent["authorization"]) == (HEADERS["X-Goog-Api-Key"], f"Bearer {KEY}")

    renamed = api.call("providers_update", {"name": "renamed"}, path={"provider_id": provider["id"]})
    assert renamed.status == 200, renamed.body
    assert "headers" not in raw_record(provider["id"])  # moved out of DynamoDB
    assert stored_secret(provider["id"]) == ProviderSecret(
        api_key=KEY, headers={"X-Goog-Api-Key": HEADERS["X-Goog-Api-Key"]}
    )
    assert sent_headers(api, monkeypatch, provider["id"])["x-goog-api-key"] == HEADERS["X-Goog-Api-Key"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Transfer-Encoding": "chunked"},
        {"Connection": "close"},
        {"X-Api-Key": "x"},
        {"X-A": "1", "x-a": "2"},
        {"X-A": "line\nbreak"},
        {"X-A": "nul\u0000"},
        {"X-A": ""},
        {f"X-{i}": "v" for i in range(21)},
    ],
)
def test_invalid_headers_are_400(api: Api, headers: dict[str, str]) -> None:
    reply = create(api, headers=headers)
    assert reply.status == 400, reply.body
    assert reply.body["error"]["param"].startswith("headers")


def test_a_provider_write_meeting_another_transaction_is_retried(api: Api, faults: Faults) -> None:
    rule = faults.inject(
        "transact_write_items", cancelled("TransactionConflict", "None"), times=2, when=on_table("chats")
    )
    created = create(api)
    assert (created.status, rule.fired) == (201, 2)
    assert api.call("providers_get", path={"provider_id": created.body["id"]}).status == 200


def test_a_throttled_provider_write_answers_503_and_leaves_no_secret_behind(api: Api, faults: Faults) -> None:
    faults.inject("transact_write_items", cancelled("ThrottlingError", "None"), when=on_table("chats"))
    refused = create(api)
    assert (refused.status, refused.body["error"]["code"]) == (503, "storage_throttled")
    assert "Retry-After" in refused.headers
    assert api.call("providers_list").body["data"] == []
    assert clients().secretsmanager.list_secrets()["SecretList"] == []


def test_a_throttled_provider_update_is_503_not_a_concurrent_update(api: Api, faults: Faults) -> None:
    provider_id = create(api).body["id"]
    faults.inject("transact_write_items", cancelled("None", "ThrottlingError"), when=on_table("chats"))
    refused = api.call("providers_update", {"name": "renamed"}, path={"provider_id": provider_id})
    assert (refused.status, refused.body["error"]["code"]) == (503, "storage_throttled")
    assert api.call("providers_get", path={"provider_id": provider_id}).body["name"] == "main"
