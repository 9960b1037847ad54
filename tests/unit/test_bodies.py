"""Request bodies before parsing: media type, encoding and nesting (parley.api.bodies)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from parley.api.bodies import MAX_JSON_DEPTH, exceeds_depth, loads, normalise
from parley.domain.errors import InvalidRequest, UnsupportedMediaType


def event(body: str | None, content_type: str | None = None, *, b64: bool = False) -> dict[str, Any]:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    return {
        "body": body,
        "isBase64Encoded": b64,
        "headers": dict(headers),
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
    }


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "Application/JSON; charset=UTF-8",
        "application/merge-patch+json",
        "text/plain;charset=UTF-8",  # browser fetch with a string body
        "application/x-www-form-urlencoded",  # curl -d
        'application/json; charset="utf-8"',
    ],
)
def test_json_and_json_like_media_types_are_read_as_json(content_type: str | None) -> None:
    e = event('{"a": 1}', content_type)
    normalise(e)
    assert e["body"] == '{"a": 1}'
    if content_type is not None:
        assert e["headers"] == {"Content-Type": "application/json"}
        assert e["multiValueHeaders"] == {"Content-Type": ["application/json"]}


@pytest.mark.parametrize(
    "content_type",
    [
        "application/xml",
        "text/xml",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        "text/html",
        "application/json; charset=latin-1",
        "text/plain; charset=utf-16",
        "image/png",
    ],
)
def test_other_media_types_are_415(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        normalise(event('{"a": 1}', content_type))
    assert (caught.value.status, caught.value.code, caught.value.param) == (
        415,
        "unsupported_media_type",
        "Content-Type",
    )


def test_an_empty_body_is_not_checked_and_reads_as_no_json_body() -> None:
    e = event("", "application/xml")
    normalise(e)
    assert (e["body"], e["headers"]) == ("", {"Content-Type": "application/json"})


def test_base64_bodies_are_decoded_to_text() -> None:
    e = event(base64.b64encode('{"t": "héllo"}'.encode()).decode(), "application/json", b64=True)
    normalise(e)
    assert (e["body"], e["isBase64Encoded"]) == ('{"t": "héllo"}', False)


@pytest.mark.parametrize(
    ("body", "b64"),
    [
        (base64.b64encode(b'{"t": "\xff\xfe"}').decode(), True),  # not UTF-8
        (base64.b64encode(b"\xc3\x28").decode(), True),  # a broken two-byte sequence
        (base64.b64encode(b"\xed\xa0\x80").decode(), True),  # an encoded surrogate
        ("not base64!", True),
        ("ü", True),
        ('{"t": "\ud800"}', False),  # a lone surrogate in the event's text
    ],
)
def test_bodies_that_are_not_utf8_are_400_invalid_encoding(body: str, b64: bool) -> None:
    with pytest.raises(InvalidRequest) as caught:
        normalise(event(body, "application/json", b64=b64))
    assert (caught.value.status, caught.value.code) == (400, "invalid_encoding")


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, False),
        ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), True),
        ('{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1), True),
        ('"' + "[" * 1000 + '"', False),  # brackets inside a string do not count
        ('["\\"' + "[" * 1000 + '"]', False),  # nor after an escaped quote
        ('["\\\\"' + ",[" * 100 + "]" * 100 + "]", True),  # an escaped backslash does not escape the quote
        ("[]" * 100_000, False),
        ("[" * 10_000, True),  # unbalanced: still refused before parsing
        ('"' + "[" * 100, False),  # unterminated string: left to the parser
        ("]" * 100 + "[" * 10, False),
    ],
)
def test_depth_scan(text: str, deep: bool) -> None:
    assert exceeds_depth(text, MAX_JSON_DEPTH) is deep


def test_deep_nesting_is_400_before_parsing() -> None:
    with pytest.raises(InvalidRequest) as caught:
        normalise(event("[" * 10_000 + "]" * 10_000, "application/json"))
    assert (caught.value.status, caught.value.code) == (400, "json_too_deep")


@pytest.mark.parametrize("unit", ['"\\"', "[]", '"a",', "\\"])
def test_the_depth_scan_answers_on_hostile_megabytes(unit: str) -> None:
    # How long it takes (linear in the size) is measured by bench/body_scan.py, not here.
    assert exceeds_depth(unit * 300_000 + '"', MAX_JSON_DEPTH) is False
    assert exceeds_depth("[" * 300_000 + unit, MAX_JSON_DEPTH) is True


@pytest.mark.parametrize(
    "text",
    ["NaN", '{"t": Infinity}', "[-Infinity]", "1" * 5000, "1e400", "[-1.5e999]"],
)
def test_loads_refuses_what_is_not_portable_json(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        loads(text)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"content": "bad \\ud800 text"}', ("body", "content")),
        ('"\\udc00x"', ("body",)),
        ('{"messages": [{"role": "user"}, {"content": "\\udfff\\ud800"}]}', ("body", "messages", 1, "content")),
        ('{"metadata": {"\\ud83d": "key"}}', ("body", "metadata", "\ud83d")),
    ],
)
def test_loads_names_the_field_holding_a_lone_surrogate_escape(text: str, where: tuple[Any, ...]) -> None:
    with pytest.raises(RequestValidationError) as caught:
        loads(text)
    (error,) = caught.value.errors()
    assert error["loc"] == where


def test_loads_keeps_surrogate_pairs_and_big_numbers() -> None:
    assert loads('{"e": "\\ud83d\\ude00", "n": 1e300, "i": 12345678901234567890}') == {
        "e": "😀",
        "n": 1e300,
        "i": 12345678901234567890,
    }
