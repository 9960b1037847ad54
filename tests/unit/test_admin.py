from __future__ import annotations

import json

import pytest

from parley.admin import main as admin
from parley.services.keys import authenticate


def test_admin_creates_a_key_that_authenticates(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert admin(["create-key", "--org", "acme", "--project", "support", "--permission", "chats:*", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    principal = authenticate(created["secret"])
    assert principal is not None
    assert (principal.org_id, principal.project_id, principal.permissions) == ("acme", "support", ("chats:*",))
