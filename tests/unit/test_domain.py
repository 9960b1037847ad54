from __future__ import annotations

import re

import pytest

from parley.domain.errors import AuthenticationFailed, PermissionDenied
from parley.domain.ids import has_prefix, new_id, ulid
from parley.domain.principal import Principal
from parley.settings import Settings


def test_ids_are_prefixed_ulids_in_creation_order() -> None:
    ids = [new_id("conv") for _ in range(2000)]
    assert all(re.fullmatch(r"conv_[0-9A-HJKMNP-TV-Z]{26}", i) for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert has_prefix(ids[0], "conv") and not has_prefix(ids[0], "msg")
    assert new_id("chatcmpl").startswith("chatcmpl-")
    assert len(ulid()) == 26
    with pytest.raises(ValueError):
        new_id("nope")


@pytest.mark.parametrize(
    ("granted", "action", "allowed"),
    [
        (("*",), "completions:CreateChatCompletion", True),
        (("completions:*",), "completions:CreateChatCompletion", True),
        (("completions:CreateChatCompletion",), "completions:CreateChatCompletion", True),
        (("conversations:*",), "completions:CreateChatCompletion", False),
        (("completions:ListThings",), "completions:CreateChatCompletion", False),
        ((), "completions:CreateChatCompletion", False),
    ],
)
def test_permission_matching(granted: tuple[str, ...], action: str, allowed: bool) -> None:
    principal = Principal("org", "proj", "key", granted)
    assert principal.allows(action) is allowed
    if not allowed:
        with pytest.raises(PermissionDenied):
            principal.require(action)


def test_principal_round_trips_through_the_authorizer_context() -> None:
    principal = Principal("org_1", "proj_1", "key_1", ("chats:*", "completions:CreateChatCompletion"))
    context = principal.to_context()
    assert all(isinstance(v, str) for v in context.values())
    assert Principal.from_context({"principalId": "key_1", **context}) == principal
    with pytest.raises(AuthenticationFailed):
        Principal.from_context(None)
    with pytest.raises(AuthenticationFailed):
        Principal.from_context({**context, "permissions": "{not json"})


def test_settings_come_from_the_environment_with_local_defaults() -> None:
    # ...except the stage: without PARLEY_STAGE the egress checks stay on (fail closed).
    assert not Settings.from_env({}).local
    assert Settings.from_env({"PARLEY_STAGE": "local"}).local
    settings = Settings.from_env(
        {"PARLEY_STAGE": "prod", "PARLEY_TABLE_KEYS": "stack-keys-abc", "PARLEY_ECHO_DELAY_MS": "150"}
    )
    assert not settings.local
    assert settings.table("keys") == "stack-keys-abc"
    assert settings.table("messages") == "parley-messages"
    assert settings.echo_delay_ms == 150
    with pytest.raises(ValueError, match="PARLEY_ECHO_DELAY_MS"):
        Settings.from_env({"PARLEY_ECHO_DELAY_MS": "soon"})
    with pytest.raises(ValueError, match="PARLEY_MAX_BODY_BYTES"):
        Settings.from_env({"PARLEY_MAX_BODY_BYTES": "0"})
