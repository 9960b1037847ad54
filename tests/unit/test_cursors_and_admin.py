from __future__ import annotations

import json

import pytest

from parley.admin import main as admin
from parley.api.cursors import decode_cursor, encode_cursor
from parley.domain.errors import InvalidRequest
from parley.services.keys import authenticate


def test_cursors_round_trip_and_are_opaque() -> None:
    cursor = encode_cursor("messages", {"seq": 41, "order": "desc"})
    assert "seq" not in cursor and "=" not in cursor
    assert decode_cursor(cursor, "messages") == {"seq": 41, "order": "desc"}


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-3],
        lambda c: c[:5] + ("A" if c[5] != "A" else "B") + c[6:],
        lambda c: "!!!",
        lambda c: "",
        lambda c: "e30",
    ],
)
def test_damaged_cursors_are_a_400_naming_cursor(mangle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRequest) as refused:
        decode_cursor(mangle(encode_cursor("messages", {"seq": 1})), "messages")
    assert (refused.value.param, refused.value.code) == ("cursor", "invalid_cursor")


def test_a_cursor_from_another_list_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="another list"):
        decode_cursor(encode_cursor("conversations", {"k": "x"}), "messages")


def test_admin_creates_a_key_that_authenticates(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert admin(["create-key", "--org", "acme", "--project", "support", "--permission", "chats:*", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    principal = authenticate(created["secret"])
    assert principal is not None
    assert (principal.org_id, principal.project_id, principal.permissions) == ("acme", "support", ("chats:*",))
