"""Projects and API keys as resources: create, list, narrow, rotate, revoke, expire."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from parley.aws import clients
from parley.domain.principal import Principal
from parley.services import keys
from parley.services.keys import authenticate, issue_key
from tests.handlers.api import Api

ADMIN = Principal("org_a", "proj_a", "key_admin", ("*",))


@pytest.fixture
def api(aws: None, load_handler: Any, sample_event: Any, lambda_context: Any) -> Api:
    keys.ensure_project("org_a", "proj_a")
    return Api(load_handler, sample_event, lambda_context, ADMIN)


def principal_of(secret: str) -> Principal:
    found = authenticate(secret)
    assert found is not None
    return found


def everything_stored() -> str:
    db = clients().dynamodb
    return json.dumps([db.scan(TableName=t)["Items"] for t in db.list_tables()["TableNames"]])


def test_given_a_new_key_then_its_secret_is_shown_once_and_stored_only_as_a_hash(api: Api) -> None:
    created = api.call("api_keys_create", {"name": "ci", "permissions": ["conversations:*"]})
    assert created.status == 201, created.body
    secret = created.body["secret"]
    assert secret.startswith("prl_") and created.body["prefix"] == secret[:8]
    assert created.headers.get("Cache-Control") == "no-store"
    assert secret not in everything_stored()
    caller = principal_of(secret)
    assert (caller.project_id, caller.permissions, caller.key_id) == (
        "proj_a",
        ("conversations:*",),
        created.body["id"],
    )
    shown = api.call("api_keys_get", path={"key_id": created.body["id"]})
    assert shown.status == 200 and "secret" not in shown.body
    listed = api.call("api_keys_list")
    assert [k["id"] for k in listed.body["data"]] == [created.body["id"]]
    assert "secret" not in json.dumps(listed.body)


def test_given_a_used_key_then_last_used_at_is_set(api: Api) -> None:
    created = api.call("api_keys_create", {"name": "ci"}).body
    assert created["last_used_at"] is None
    principal_of(created["secret"])
    assert api.call("api_keys_get", path={"key_id": created["id"]}).body["last_used_at"] is not None


@pytest.mark.parametrize(
    ("creator", "wanted", "allowed"),
    [
        (("conversations:*",), ["conversations:SendMessage"], True),
        (("conversations:*",), ["conversations:*"], True),
        (("conversations:SendMessage",), ["conversations:*"], False),
        (("conversations:*",), ["*"], False),
        (("conversations:*",), ["chats:GetChat"], False),
        (("*",), ["*"], True),
    ],
)
def test_a_key_never_grants_more_than_the_key_that_creates_it(
    api: Api, creator: tuple[str, ...], wanted: list[str], allowed: bool
) -> None:
    maker = Principal("org_a", "proj_a", "key_maker", ("api_keys:CreateApiKey", *creator))
    reply = api.call("api_keys_create", {"name": "child", "permissions": wanted}, principal=maker)
    if allowed:
        assert reply.status == 201, reply.body
    else:
        assert reply.status == 400
        assert reply.body["error"]["code"] == "permission_exceeds_creator"
        assert reply.body["error"]["param"] == "permissions[0]"


def test_without_permissions_a_new_key_gets_its_creators(api: Api) -> None:
    maker = Principal("org_a", "proj_a", "key_maker", ("api_keys:CreateApiKey", "chats:GetChat"))
    created = api.call("api_keys_create", {"name": "child"}, principal=maker).body
    assert created["permissions"] == ["api_keys:CreateApiKey", "chats:GetChat"]


@pytest.mark.parametrize(
    "permissions", [["nothing:Here"], ["chats:NoSuchAction"], ["chats"], [], ["chats:*", "chats:*"], [1]]
)
def test_unknown_or_malformed_permissions_are_400(api: Api, permissions: list[Any]) -> None:
    reply = api.call("api_keys_create", {"name": "x", "permissions": permissions})
    assert reply.status == 400
    assert reply.body["error"]["type"] == "invalid_request_error"


def test_a_key_cannot_outlive_or_outrun_its_creator(api: Api) -> None:
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    maker = Principal(
        "org_a",
        "proj_a",
        "key_maker",
        ("*",),
        expires_at=(datetime.now(UTC) + timedelta(days=1, hours=1)).isoformat().replace("+00:00", "Z"),
        key_limits=keys.Limits(requests_per_minute=10),
    )
    assert api.call("api_keys_create", {"name": "x", "expires_at": later}, principal=maker).body["error"]["code"] == (
        "expiry_exceeds_creator"
    )
    too_fast = api.call("api_keys_create", {"name": "x", "limits": {"requests_per_minute": 11}}, principal=maker)
    assert too_fast.body["error"]["code"] == "limit_exceeds_creator"
    made = api.call("api_keys_create", {"name": "x", "expires_at": soon}, principal=maker)
    assert made.status == 201
    assert made.body["limits"]["requests_per_minute"] == 10  # the creator's cap carries over
    inherited = api.call("api_keys_create", {"name": "y"}, principal=maker).body
    assert inherited["expires_at"] == maker.expires_at


@pytest.mark.parametrize("expires_at", ["2020-01-01T00:00:00Z", "2030-01-01T00:00:00", "soon", 5])
def test_past_naive_or_malformed_expiry_is_400(api: Api, expires_at: Any) -> None:
    reply = api.call("api_keys_create", {"name": "x", "expires_at": expires_at})
    assert reply.status == 400 and reply.body["error"]["param"] == "expires_at"


def test_an_expired_key_is_refused_by_the_authorizer_and_by_every_route(api: Api) -> None:
    issued = issue_key("org_a", "proj_a", ("*",), expires_at="2030-01-01T00:00:00.000Z")
    assert authenticate(issued.secret) is not None
    later = keys.Deps(clock=lambda: datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert authenticate(issued.secret, deps=later) is None
    # a principal the authorizer cached before the expiry is refused by the route itself
    stale = Principal("org_a", "proj_a", issued.record.key_id, ("*",), expires_at="2020-01-01T00:00:00.000Z")
    reply = api.call("api_keys_list", principal=stale)
    assert reply.status == 401 and reply.body["error"]["code"] == "api_key_expired"


def test_a_rotated_key_keeps_its_id_and_its_old_secret_is_refused(api: Api) -> None:
    created = api.call("api_keys_create", {"name": "ci", "permissions": ["chats:*"]}).body
    rotated = api.call("api_keys_rotate", path={"key_id": created["id"]})
    assert rotated.status == 200, rotated.body
    assert rotated.body["id"] == created["id"] and rotated.body["secret"] != created["secret"]
    assert rotated.body["rotated_at"] is not None
    assert authenticate(created["secret"]) is None
    assert principal_of(rotated.body["secret"]).permissions == ("chats:*",)
    assert api.call("api_keys_get", path={"key_id": created["id"]}).body["prefix"] == rotated.body["secret"][:8]


def test_a_deleted_key_is_refused_and_gone(api: Api) -> None:
    created = api.call("api_keys_create", {"name": "ci"}).body
    deleted = api.call("api_keys_delete", path={"key_id": created["id"]})
    assert deleted.body == {"id": created["id"], "object": "api_key", "deleted": True}
    assert authenticate(created["secret"]) is None
    assert api.call("api_keys_get", path={"key_id": created["id"]}).status == 404
    assert api.call("api_keys_delete", path={"key_id": created["id"]}).status == 404
    assert created["id"] not in everything_stored()


def test_a_key_can_revoke_itself(api: Api) -> None:
    created = api.call("api_keys_create", {"name": "ci"}).body
    itself = principal_of(created["secret"])
    assert api.call("api_keys_delete", path={"key_id": created["id"]}, principal=itself).status == 200
    assert authenticate(created["secret"]) is None


def test_a_retried_create_with_one_idempotency_key_never_makes_a_second_key(api: Api) -> None:
    body = {"name": "ci", "permissions": ["chats:*"]}
    headers = {"Idempotency-Key": "create-ci-1"}
    first = api.call("api_keys_create", body, headers=headers)
    assert first.status == 201
    again = api.call("api_keys_create", body, headers=headers)
    assert again.status == 409
    assert again.body["error"]["code"] == "api_key_already_created"
    assert first.body["id"] in again.body["error"]["message"]
    assert first.body["secret"] not in json.dumps(again.body)
    other = api.call("api_keys_create", {**body, "name": "other"}, headers=headers)
    assert other.body["error"]["code"] == "idempotency_key_reused"
    assert len(api.call("api_keys_list").body["data"]) == 1
    assert first.body["secret"] not in everything_stored()


def test_a_patch_changes_name_and_limits_and_the_authorizer_sees_them(api: Api) -> None:
    created = api.call("api_keys_create", {"name": "ci"}).body
    patched = api.call(
        "api_keys_update", {"name": "ci2", "limits": {"requests_per_minute": 7}}, path={"key_id": created["id"]}
    )
    assert patched.status == 200, patched.body
    assert (patched.body["name"], patched.body["limits"]["requests_per_minute"]) == ("ci2", 7)
    assert principal_of(created["secret"]).key_limits == keys.Limits(requests_per_minute=7)


def test_another_projects_keys_are_not_found_unless_an_org_admin_asks(api: Api) -> None:
    other = issue_key("org_a", "proj_b", ("*",), name="b")
    project_admin = Principal("org_a", "proj_a", "key_pa", ("api_keys:*",))
    for function in ("api_keys_get", "api_keys_delete", "api_keys_rotate"):
        assert api.call(function, path={"key_id": other.record.key_id}, principal=project_admin).status == 404
        scoped = api.call(
            function, path={"key_id": other.record.key_id}, query={"project_id": "proj_b"}, principal=project_admin
        )
        assert scoped.status == 404 and scoped.body["error"]["code"] == "project_not_found"
    assert api.call("api_keys_list", query={"project_id": "proj_b"}, principal=project_admin).status == 404
    # an org administrator (projects:* or *) manages keys of any project of the org
    listed = api.call("api_keys_list", query={"project_id": "proj_b"})
    assert [k["id"] for k in listed.body["data"]] == [other.record.key_id]
    made = api.call("api_keys_create", {"name": "for-b", "project_id": "proj_b"})
    assert made.status == 201 and principal_of(made.body["secret"]).project_id == "proj_b"
    assert api.call("api_keys_create", {"name": "x", "project_id": "proj_nowhere"}).status == 404
    stranger = Principal("org_z", "proj_a", "key_z", ("*",))
    assert api.call("api_keys_get", path={"key_id": made.body["id"]}, principal=stranger).status == 404


def test_projects_are_created_listed_read_and_limited_within_the_org(api: Api) -> None:
    made = api.call("projects_create", {"name": "Support", "limits": {"requests_per_minute": 60}})
    assert made.status == 201, made.body
    project = made.body
    assert project["id"].startswith("proj_") and project["org_id"] == "org_a"
    assert api.call("projects_get", path={"project_id": project["id"]}).body == project
    ids = [p["id"] for p in api.call("projects_list").body["data"]]
    assert set(ids) == {"proj_a", project["id"]}
    patched = api.call(
        "projects_update", {"limits": {"monthly_budget_usd": 12.5}}, path={"project_id": project["id"]}
    ).body
    assert patched["limits"] == {
        "requests_per_minute": None,
        "tokens_per_minute": None,
        "monthly_budget_usd": 12.5,
        "user_monthly_budget_usd": None,
    }
    stranger = Principal("org_z", "proj_z", "key_z", ("*",))
    assert api.call("projects_get", path={"project_id": project["id"]}, principal=stranger).status == 404
    assert api.call(
        "projects_update", {"name": "x"}, path={"project_id": project["id"]}, principal=stranger
    ).status == (404)
    # the project's limits reach the principal of its keys
    key = api.call("api_keys_create", {"name": "k", "project_id": project["id"]}).body
    assert principal_of(key["secret"]).project_limits == keys.ProjectLimits(monthly_budget_usd=12.5)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "limits": {"requests_per_minute": 0}},
        {"name": "x", "limits": {"requests_per_minute": True}},
        {"name": "x", "limits": {"monthly_budget_usd": -1}},
        {"name": "x", "limits": {"monthly_budget_usd": "5"}},
        {"name": "x", "limits": {"unknown": 1}},
        {"name": ""},
        {"name": "x", "org_id": "org_b"},
    ],
)
def test_bad_project_bodies_are_400(api: Api, body: dict[str, Any]) -> None:
    reply = api.call("projects_create", body)
    assert reply.status == 400, reply.body
