"""Request bodies at the edge: what a body must be before anything parses it.

- **Media type.** Bodies are JSON. `application/json`, `application/<anything>+json`, and
  `text/plain` or `application/x-www-form-urlencoded` bodies (what browser `fetch` sends for
  a string body, and what `curl -d` labels) are all read as JSON; a missing Content-Type too.
  Anything else (`application/xml`, `multipart/form-data`, ...) is 415
  `unsupported_media_type`, as is a `charset` other than UTF-8.
- **Encoding.** UTF-8 (RFC 8259 section 8.1). A base64 body (`isBase64Encoded`) is decoded
  first. Bytes that are not UTF-8, and raw lone surrogates, are 400 `invalid_encoding`; a lone
  surrogate written as a `\\ud800` escape is a 400 naming the field that holds it.
- **Nesting.** At most MAX_JSON_DEPTH levels of arrays and objects, checked by a linear scan
  before parsing (400 `json_too_deep`), so no body can exhaust the parser's recursion.
- **Values.** `loads` (the resolver's JSON deserializer) refuses `NaN`/`Infinity`, numbers that
  overflow a double (`1e400`) and integers too long to convert, as invalid JSON (400).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import MutableMapping
from itertools import accumulate
from typing import Any

from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from parley.domain.errors import InvalidRequest, UnsupportedMediaType

MAX_JSON_DEPTH = 64
JSON = "application/json"
# Media types read as JSON besides application/json and */*+json.
_READ_AS_JSON = frozenset({JSON, "text/plain", "application/x-www-form-urlencoded"})
_UTF8 = frozenset({"utf-8", "utf8", "us-ascii"})
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def normalise(event: MutableMapping[str, Any]) -> None:
    """Check the event's body (media type, encoding, nesting) and leave it as UTF-8 JSON text
    labelled application/json, which is what the resolver parses; raise a 4xx otherwise."""
    body = event.get("body")
    if not body:  # nothing to read: whatever the label says, the resolver sees "no JSON body"
        _label_json(event)
        return
    _check_media_type(_content_type(event))
    text = _text(body, base64_encoded=bool(event.get("isBase64Encoded")))
    if exceeds_depth(text, MAX_JSON_DEPTH):
        raise InvalidRequest(
            f"The request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels.", code="json_too_deep"
        )
    event["body"], event["isBase64Encoded"] = text, False
    _label_json(event)


def loads(text: str | bytes) -> Any:
    """json.loads for request bodies: NaN, Infinity and over-long numbers are invalid JSON too."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # an integer beyond Python's digit limit, or a refused constant
        detail = str(exc) if isinstance(exc, _Refused) else "a number has too many digits"
        raise json.JSONDecodeError(detail, text if isinstance(text, str) else "", 0) from exc
    if isinstance(text, str) and _SURROGATE_ESCAPE.search(text):
        where = _lone_surrogate(value, ())
        if where is not None:  # the field that holds it, as a validation error names it (param)
            raise RequestValidationError(
                [
                    {
                        "type": "string_unicode",
                        "loc": ("body", *where),
                        "msg": "Input holds a lone surrogate (\\ud800-\\udfff escapes must come in pairs)",
                        "input": "",
                    }
                ]
            )
    return value


def exceeds_depth(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than `limit`. Linear time: strings are
    skipped with str.find, and bracket runs between them are summed in C."""
    depth, i, end = 0, 0, len(text)
    while i < end:
        quote = text.find('"', i)
        segment = text[i:] if quote < 0 else text[i:quote]
        brackets = _NOT_BRACKETS.sub("", segment)
        if brackets:
            if max(accumulate(map(_STEP.__getitem__, brackets), initial=depth)) > limit:
                return True
            depth += 2 * (brackets.count("[") + brackets.count("{")) - len(brackets)
        if quote < 0:
            return False
        i = _string_end(text, quote)
        if i < 0:  # an unterminated string: the parser refuses it
            return False
    return False


def _string_end(text: str, quote: int) -> int:
    """The index after the quote closing the string opened at `quote`, or -1."""
    j = quote + 1
    while True:
        k = text.find('"', j)
        if k < 0:
            return -1
        start = k
        while text[start - 1] == "\\":  # stops at the opening quote at the latest
            start -= 1
        if (k - start) % 2 == 0:  # an even run of backslashes escapes itself, not the quote
            return k + 1
        j = k + 1


def _content_type(event: MutableMapping[str, Any]) -> str | None:
    for name, value in (event.get("headers") or {}).items():
        if isinstance(name, str) and name.lower() == "content-type":
            return str(value) if value is not None else None
    for name, values in (event.get("multiValueHeaders") or {}).items():
        if isinstance(name, str) and name.lower() == "content-type" and values:
            return str(values[-1])
    return None


def _check_media_type(content_type: str | None) -> None:
    if content_type is None or not content_type.strip():
        return
    media_type, *params = (part.strip() for part in content_type.split(";"))
    media_type = media_type.lower()
    if media_type not in _READ_AS_JSON and not (media_type.startswith("application/") and media_type.endswith("+json")):
        raise UnsupportedMediaType(
            f"Request bodies are JSON; send Content-Type: application/json (not {media_type[:100]!r}).",
            param="Content-Type",
        )
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in _UTF8:
            raise UnsupportedMediaType(
                f"Request bodies are UTF-8 JSON; charset {value.strip()[:40]!r} is not supported.",
                param="Content-Type",
            )


def _text(body: Any, *, base64_encoded: bool) -> str:
    if not isinstance(body, str):
        raise InvalidRequest("The request body must be text.", code="invalid_encoding")
    try:
        if base64_encoded:
            return base64.b64decode(body, validate=True).decode("utf-8")
        body.encode("utf-8")  # a str from the event can still hold lone surrogates
    except ValueError as exc:  # binascii.Error, UnicodeError, or a non-ASCII base64 body
        raise InvalidRequest("The request body is not valid UTF-8.", code="invalid_encoding") from exc
    return body


def _label_json(event: MutableMapping[str, Any]) -> None:
    for field in ("headers", "multiValueHeaders"):
        headers = event.get(field)
        if not headers:
            continue
        for name in [n for n in headers if isinstance(n, str) and n.lower() == "content-type"]:
            del headers[name]
        headers["Content-Type"] = [JSON] if field == "multiValueHeaders" else JSON


class _Refused(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _Refused(f"{literal[:40]} is too large for a number")
    return value


def _lone_surrogate(value: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    """The path of the first string (or key) that is not encodable as UTF-8, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    items: Any = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _lone_surrogate(key, (*path, key)) if isinstance(key, str) else None
        found = found if found is not None else _lone_surrogate(item, (*path, key))
        if found is not None:
            return found
    return None
