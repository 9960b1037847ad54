"""Cursors are signed (HMAC-SHA256, a per-deployment key) and checked for shape after decoding."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from parley.api import cursors
from parley.api.cursors import decode_cursor, encode_cursor
from parley.aws import clients
from parley.domain.errors import InvalidRequest, ParleyError
from parley.settings import get_settings, set_settings

MESSAGES = {"conversation_id": str, "order": str, "seq": int}


def forge(document: Any, key: bytes) -> str:
    """A cursor signed with `key` holding any JSON document (what a bug, or a leaked key, could make)."""
    data = json.dumps(document).encode()
    tag = hmac.new(key, data, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(tag + data).rstrip(b"=").decode()


@pytest.fixture
def local_key() -> bytes:
    return cursors.signing_key()


def refused(cursor: str, kind: str = "messages", shape: Any = MESSAGES) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        decode_cursor(cursor, kind, shape)
    assert (caught.value.status, caught.value.code, caught.value.param) == (400, "invalid_cursor", "cursor")
    return caught.value


def test_cursors_round_trip_and_are_opaque() -> None:
    position = {"conversation_id": "conv_1", "order": "desc", "seq": 41}
    cursor = encode_cursor("messages", position)
    assert "seq" not in cursor and "=" not in cursor
    assert decode_cursor(cursor, "messages", MESSAGES) == position


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-3],
        lambda c: c[:5] + ("A" if c[5] != "A" else "B") + c[6:],
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),
        lambda c: "!!!",
        lambda c: "",
        lambda c: "e30",
        lambda c: "é" + c,
        lambda c: c + c,
    ],
)
def test_damaged_cursors_are_a_400_naming_cursor(mangle: Any) -> None:
    refused(mangle(encode_cursor("messages", {"conversation_id": "conv_1", "order": "asc", "seq": 1})))


def test_the_old_checksum_is_not_enough_to_forge_a_cursor() -> None:
    import zlib

    payload = json.dumps({"v": 1, "k": "messages", "p": {"conversation_id": "c", "order": "asc", "seq": "x"}})
    crc_cursor = base64.urlsafe_b64encode(zlib.crc32(payload.encode()).to_bytes(4, "big") + payload.encode())
    refused(crc_cursor.decode())
    # An attacker's own key makes a well-formed cursor that still does not verify.
    refused(forge({"v": 2, "k": "messages", "p": {"conversation_id": "c", "order": "asc", "seq": 1}}, b"guess" * 8))


@pytest.mark.parametrize(
    "position",
    [
        {"conversation_id": "c", "order": "asc", "seq": "7"},  # int("7") used to work, int("x") was a 500
        {"conversation_id": "c", "order": "asc", "seq": None},
        {"conversation_id": "c", "order": "asc", "seq": True},  # a bool is not an int position
        {"conversation_id": "c", "order": "asc", "seq": 1.5},
        {"conversation_id": "c", "order": "asc", "seq": [1]},
        {"conversation_id": 5, "order": "asc", "seq": 1},
        {"conversation_id": "c", "order": "asc"},  # missing field
        {"conversation_id": "c", "order": "asc", "seq": 1, "extra": 1},  # unexpected field
    ],
)
def test_a_validly_signed_cursor_of_the_wrong_shape_is_a_400(local_key: bytes, position: dict[str, Any]) -> None:
    refused(forge({"v": 2, "k": "messages", "p": position}, local_key))


@pytest.mark.parametrize("document", [[], "x", {"v": 1, "k": "messages", "p": {}}, {"v": 2, "k": "messages", "p": []}])
def test_a_validly_signed_document_that_is_not_a_cursor_is_a_400(local_key: bytes, document: Any) -> None:
    refused(forge(document, local_key))


def test_optional_fields_take_none() -> None:
    shape = {"before": str, "user_id": (str, type(None)), "status": str}
    for user in (None, "user_1"):
        position = {"before": "2026", "user_id": user, "status": "active"}
        assert decode_cursor(encode_cursor("conversations", position), "conversations", shape) == position


def test_a_cursor_from_another_list_is_refused() -> None:
    error = refused(encode_cursor("conversations", {"after": "x"}), "messages", {"after": str})
    assert "another list" in error.message


@pytest.fixture
def deployed() -> Iterator[str]:
    """Stage `prod`, with the cursor key in (moto's) Secrets Manager, as CDK deploys it."""
    with mock_aws():
        arn = clients().secretsmanager.create_secret(Name="parley-internal/prod/cursor-key", SecretString="k" * 64)[
            "ARN"
        ]
        set_settings(get_settings().with_(stage="prod", cursor_secret="parley-internal/prod/cursor-key"))
        cursors.forget_keys()
        yield arn
        cursors.forget_keys()


def test_outside_local_mode_the_key_comes_from_secrets_manager_once(
    deployed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = clients().secretsmanager.get_secret_value

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs["SecretId"])
        return real(**kwargs)

    monkeypatch.setattr(clients().secretsmanager, "get_secret_value", counting)
    position = {"after": "cht_1"}
    cursor = encode_cursor("chats", position)
    assert decode_cursor(cursor, "chats", {"after": str}) == position
    assert decode_cursor(encode_cursor("chats", position), "chats", {"after": str}) == position
    assert calls == ["parley-internal/prod/cursor-key"]  # cached per process
    assert cursors.signing_key() == b"k" * 64
    # A cursor signed with the local key is not valid in this deployment.
    set_settings(get_settings().with_(stage="local"))
    local_cursor = encode_cursor("chats", position)
    set_settings(get_settings().with_(stage="prod"))
    refused(local_cursor, "chats", {"after": str})


def test_outside_local_mode_a_missing_key_setting_is_a_500_not_an_unsigned_cursor() -> None:
    set_settings(get_settings().with_(stage="prod", cursor_secret=""))
    with pytest.raises(ParleyError) as caught:
        encode_cursor("chats", {"after": "x"})
    assert caught.value.status == 500
