"""Plain dicts to DynamoDB items and back (numbers come back as int or float, not Decimal)."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any


@cache
def _codecs() -> tuple[Any, Any]:
    """boto3's attribute-value codecs, imported on first use (boto3 costs ~200 ms to import)."""
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer  # noqa: PLC0415

    return TypeSerializer(), TypeDeserializer()


def _prepare(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _prepare(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_prepare(v) for v in value]
    return value


# DynamoDB numbers hold 38 digits: a larger integral value (a float such as 2e100 stored as 2E+100)
# comes back as a float, so writing it back does not need 101 digits.
_MAX_INT_DIGITS = 38


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            whole = int(value)
            if len(str(abs(whole))) <= _MAX_INT_DIGITS:
                return whole
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    """None values are left out (DynamoDB has no use for them)."""
    serializer = _codecs()[0]
    return {k: serializer.serialize(_prepare(v)) for k, v in data.items() if v is not None}


def to_value(value: Any) -> dict[str, Any]:
    return dict(_codecs()[0].serialize(_prepare(value)))


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    deserializer = _codecs()[1]
    return {k: _plain(deserializer.deserialize(v)) for k, v in item.items()}
