"""The permissions a key can be given are exactly the route table's actions."""

from __future__ import annotations

import pytest

from parley.api.routing import RouteTable
from parley.domain.keys import ACTIONS, INNER_ACTIONS, ROUTE_ACTIONS, check_permission, covers


def test_the_grantable_actions_are_the_route_tables(route_table: RouteTable) -> None:
    assert {r.permission for r in route_table.routes if r.permission is not None} == ROUTE_ACTIONS
    assert ACTIONS == ROUTE_ACTIONS | INNER_ACTIONS and not INNER_ACTIONS & ROUTE_ACTIONS


@pytest.mark.parametrize("action", sorted(INNER_ACTIONS))
def test_a_permission_checked_inside_a_route_can_be_granted_on_its_own(action: str) -> None:
    assert check_permission(action) == action


@pytest.mark.parametrize(
    ("held", "wanted", "expected"),
    [
        (("*",), "*", True),
        (("chats:*",), "*", False),
        (("chats:*",), "chats:*", True),
        (("chats:GetChat",), "chats:*", False),
        (("chats:*",), "chats:GetChat", True),
        (("*",), "chats:GetChat", True),
        (("chats:GetChat",), "chats:GetChat", True),
        (("chats:GetChat",), "chats:ListChats", False),
        (("providers:*",), "chats:GetChat", False),
    ],
)
def test_covers(held: tuple[str, ...], wanted: str, expected: bool) -> None:
    assert covers(held, wanted) is expected


@pytest.mark.parametrize("value", ["chats:*", "*", "api_keys:RotateApiKey"])
def test_real_permissions_pass(value: str) -> None:
    assert check_permission(value) == value


@pytest.mark.parametrize("value", ["chats", "chats:getChat", "chat:GetChat", "chats:Nope", "**", " chats:*"])
def test_unreal_permissions_fail(value: str) -> None:
    with pytest.raises(ValueError, match=r"permission|resource|action"):
        check_permission(value)
