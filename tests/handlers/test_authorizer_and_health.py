"""The REQUEST authorizer against the keys table, and the public health route."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley.runtime.events import authorizer_event
from parley.services.keys import IssuedKey, authenticate, issue_key
from parley.storage.keys import hash_secret


def event_with(header: str | None) -> dict[str, Any]:
    headers = {"Authorization": [header]} if header is not None else {}
    return authorizer_event("POST", "/v1/chat/completions", "/v1/chat/completions", headers=headers)


def test_given_a_valid_key_then_an_api_wide_allow_and_the_principal(
    load_handler: Any, api_key: IssuedKey, lambda_context: Any
) -> None:
    result = load_handler("authorizer")(event_with(f"Bearer {api_key.secret}"), lambda_context)
    assert result["principalId"] == api_key.record.key_id
    statement = result["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == "arn:aws:execute-api:us-east-1:000000000000:local/local/*"
    assert result["context"] == {
        "org_id": "org_test",
        "project_id": "proj_test",
        "key_id": api_key.record.key_id,
        "permissions": json.dumps(["*"]),
    }


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer prl_unknown", "Basic abc", "prl_x"])
def test_given_a_missing_or_unknown_key_then_unauthorized(
    load_handler: Any, api_key: IssuedKey, lambda_context: Any, header: str | None
) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        load_handler("authorizer")(event_with(header), lambda_context)


def test_keys_are_stored_only_as_hashes(aws: None) -> None:
    from parley.aws import clients

    issued = issue_key("org", "proj", ("chats:*",), secret="prl_fixed_secret_for_test")
    items = clients().dynamodb.scan(TableName="parley-keys")["Items"]
    assert "prl_fixed_secret_for_test" not in json.dumps(items)
    assert items[0]["pk"]["S"] == hash_secret("prl_fixed_secret_for_test")
    assert authenticate("prl_fixed_secret_for_test") is not None
    assert authenticate("prl_fixed_secret_for_tesT") is None
    assert issued.record.prefix == "prl_fixe"


def test_revoked_keys_are_refused(aws: None) -> None:
    from parley.aws import clients

    issued = issue_key("org", "proj", secret="prl_to_revoke")
    clients().dynamodb.update_item(
        TableName="parley-keys",
        Key={"pk": {"S": issued.record.key_hash}},
        UpdateExpression="SET revoked_at = :t",
        ExpressionAttributeValues={":t": {"S": "2026-11-23T00:00:00Z"}},
    )
    assert authenticate("prl_to_revoke") is None


def test_health_needs_no_key(load_handler: Any, sample_event: Any, lambda_context: Any) -> None:
    result = load_handler("health_get")(sample_event("health_get"), lambda_context)
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["status"] == "ok"
