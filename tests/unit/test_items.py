"""The item codec (parley.storage.items): what is read back can be written again."""

from __future__ import annotations

from typing import Any

import pytest

from parley.storage.items import from_item, to_item


@pytest.mark.parametrize("value", [2e100, 1e38, 9.5e125, 10**37, 1.5, 0, -7, 1e-130])
def test_a_number_read_back_can_be_written_again(value: Any) -> None:
    # schemathesis found a conversation with metadata 2e100 broken for good: it came back as a
    # 101-digit int, which DynamoDB's 38-digit numbers cannot take, so its next write answered 500
    once = from_item(to_item({"v": value}))["v"]
    assert once == value
    assert from_item(to_item({"v": once}))["v"] == value
