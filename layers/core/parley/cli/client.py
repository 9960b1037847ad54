"""A small client for the Parley API: base URL, bearer key, JSON requests, errors, SSE.

Every request sends `Authorization: Bearer <key>`. Errors come back as ApiError (the API's
`{"error": {...}}` body, or what could be made of a non-JSON one) and TransportError
(connection refused, timeouts, broken streams); neither carries the key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, ServerSentEvent

from parley import __version__

DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 120.0
USER_AGENT = f"parley-cli/{__version__}"

JsonObject = dict[str, Any]


class CliError(Exception):
    """A failure the CLI reports as one line on stderr (exit 1)."""

    def describe(self) -> str:
        return str(self)


class ApiError(CliError):
    """An error answered by the API (an HTTP error status, or an error event in a stream)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type_: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type_
        self.code = code
        self.param = param
        self.request_id = request_id

    @classmethod
    def from_body(cls, body: object, *, status: int | None = None, request_id: str | None = None) -> ApiError | None:
        """The error of an `{"error": {...}}` document; None when the body is not one."""
        if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
            return None
        error: dict[str, Any] = body["error"]

        def text(name: str) -> str | None:
            value = error.get(name)
            return None if value is None else str(value)

        return cls(
            text("message") or "the API reported an error",
            status=status,
            type_=text("type"),
            code=text("code"),
            param=text("param"),
            request_id=text("request_id") or request_id,
        )

    def describe(self) -> str:
        """`<message> (<code>[, param <param>]) [request <request_id>]`."""
        code = self.code or self.type or (f"http {self.status}" if self.status else "error")
        line = f"{self.message} ({code}"
        if self.param:
            line += f", param {self.param}"
        line += ")"
        if self.request_id:
            line += f" [request {self.request_id}]"
        return line


class TransportError(CliError):
    """The API could not be reached, or a response broke off."""


def path(*segments: str) -> str:
    """An API path with each segment percent-encoded: path("v1", "chats", chat_id)."""
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


class ParleyClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ParleyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: JsonObject | None = None,
    ) -> JsonObject:
        """Send a request and return its JSON object; raise ApiError on an error status."""
        with self._errors():
            response = self._http.request(
                method, url, params=params, json=json_body, headers={"Accept": "application/json"}
            )
        if response.is_error:
            raise _api_error(response)
        return _json_object(response)

    @contextmanager
    def stream(
        self, method: str, url: str, *, json_body: JsonObject | None = None
    ) -> Iterator[Iterator[ServerSentEvent]]:
        """Send a request answered with server-sent events; yield an iterator over the events as they arrive
        (parsed by httpx-sse: lines end at CR, LF or CRLF only, so a U+2028 in a JSON string stays put).

        An error status (the API answers errors raised before the first byte as JSON) raises
        ApiError before anything is yielded. A JSON (non-SSE) success body is rejected.
        """
        headers = {"Accept": "text/event-stream"}
        with self._errors(), self._http.stream(method, url, json=json_body, headers=headers) as response:
            if response.is_error:
                response.read()
                raise _api_error(response)
            content_type = response.headers.get("content-type", "")
            if not content_type.startswith("text/event-stream"):
                raise TransportError(
                    f"expected a stream of server-sent events, got {content_type or 'no content type'}"
                    f" (HTTP {response.status_code})"
                )
            yield self._guard(EventSource(response).iter_sse())

    def _guard(self, events: Iterator[ServerSentEvent]) -> Iterator[ServerSentEvent]:
        """The events, with a connection broken mid-stream raised as TransportError where it is read."""
        with self._errors():
            yield from events

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """httpx's transport failures as TransportError (their messages never contain headers)."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise TransportError(f"the request to {self.base_url} timed out ({type(exc).__name__})") from None
        except httpx.ConnectError as exc:
            raise TransportError(f"cannot connect to {self.base_url}: {exc or type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise TransportError(f"request to {self.base_url} failed: {type(exc).__name__}: {exc}") from None


def _request_id(response: httpx.Response) -> str | None:
    return response.headers.get("x-request-id") or None


def _api_error(response: httpx.Response) -> ApiError:
    try:
        body: object = response.json()
    except ValueError:
        body = None
    error = ApiError.from_body(body, status=response.status_code, request_id=_request_id(response))
    if error is not None:
        return error
    reason = response.reason_phrase or "error"
    return ApiError(
        f"HTTP {response.status_code} {reason} (not a Parley error body)",
        status=response.status_code,
        request_id=_request_id(response),
    )


def _json_object(response: httpx.Response) -> JsonObject:
    try:
        body: object = response.json()
    except ValueError:
        raise TransportError(f"the API answered HTTP {response.status_code} with a body that is not JSON") from None
    if not isinstance(body, dict):
        raise TransportError(f"the API answered HTTP {response.status_code} with JSON that is not an object")
    return body


def parse_event(event: ServerSentEvent) -> JsonObject | None:
    """The JSON object of an event's data; None for `[DONE]`. An error event raises ApiError."""
    if event.data.strip() == "[DONE]":
        return None
    try:
        payload: object = json.loads(event.data)
    except ValueError:
        raise TransportError(f"the stream sent an event that is not JSON: {event.data[:200]!r}") from None
    error = ApiError.from_body(payload)
    if error is not None:
        raise error
    if event.event == "error":
        raise ApiError(f"the stream failed: {event.data[:200]}")
    if not isinstance(payload, dict):
        raise TransportError(f"the stream sent an event that is not a JSON object: {event.data[:200]!r}")
    return payload
