"""What the HTTP-based adapters share: the client with timeouts, the mapping of upstream
failures to Parley's provider errors, Retry-After parsing, and the SSE reader (httpx-sse).

Upstream error bodies are reduced to their message, and nothing of the request (headers,
keys) is ever put into an error or a log line.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator, Mapping

import httpx
from httpx_sse import EventSource, ServerSentEvent

from parley.domain.errors import ProviderError, ProviderRateLimited, ProviderRejected, ProviderTimeout
from parley.egress import EgressRefused, GuardedTransport
from parley.settings import get_settings

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=60.0, write=30.0, pool=5.0)


def make_client(transport: httpx.BaseTransport | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> httpx.Client:
    """An httpx client for providers (tests pass an httpx.MockTransport).

    Outside local mode the transport is the egress guard: https only, and each connection goes
    to an address checked when it is made (parley.egress). With a transport given, httpx also
    ignores proxy variables from the environment, so nothing routes around the guard."""
    if transport is None and not get_settings().local:
        transport = GuardedTransport()
    return httpx.Client(transport=transport, timeout=timeout, follow_redirects=False)


# Header values shorter than this are not redacted from messages (too likely to occur by chance).
_MIN_REDACTED = 8


class Redactor:
    """Removes a provider's credentials (its API key, and its extra header values, any of which
    may be a secret) from text that came back from upstream, should it echo them."""

    def __init__(self, api_key: str | None, headers: Mapping[str, str] | None = None) -> None:
        values = [v for v in (headers or {}).values() if len(v) >= _MIN_REDACTED]
        # Longest first, so a value containing another is removed whole.
        self._secrets = sorted({*values, *([api_key] if api_key else [])}, key=len, reverse=True)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} values)"

    def text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def error(self, error: ProviderError) -> ProviderError:
        """The error with any credential removed from its message."""
        redacted = self.text(error.message)
        if redacted != error.message:
            error.message = redacted
            error.args = (redacted,)
        return error


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def upstream_message(body: bytes | str) -> str:
    """The provider's own error message (OpenAI, Anthropic and most gateways nest it in `error`)."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    try:
        document = json.loads(text)
    except ValueError:
        return text.strip()[:300] or "no details"
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:300]
    if isinstance(error, str):
        return error[:300]
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return str(document["message"])[:300]
    return text.strip()[:300]


def error_for_status(
    provider: str, status: int, body: bytes | str, headers: httpx.Headers | None = None
) -> ProviderError:
    """The Parley error for an upstream HTTP failure."""
    message = f"{provider} answered {status}: {upstream_message(body)}"
    retry_after = parse_retry_after((headers or httpx.Headers()).get("retry-after"))
    if status == 429:
        return ProviderRateLimited(message, retry_after=retry_after, upstream_status=status)
    if status in (408, 504):
        return ProviderTimeout(message, upstream_status=status, retry_after=retry_after)
    if status in (401, 403):
        return ProviderError(message, code="provider_auth_failed", upstream_status=status)
    if status in (400, 404, 409, 413, 422):
        return ProviderRejected(message, upstream_status=status)
    return ProviderError(message, retryable=status >= 500, retry_after=retry_after, upstream_status=status)


def error_for_transport(provider: str, error: httpx.HTTPError) -> ProviderError:
    """The Parley error for a connection failure or timeout (retryable; no request details), or
    for a destination the egress guard refused (not retryable: it will be refused again)."""
    if isinstance(error, EgressRefused):
        return ProviderError(f"{provider} was not called: its URL {error}.", code="egress_refused")
    if isinstance(error, httpx.TimeoutException):
        return ProviderTimeout(f"{provider} did not answer in time ({type(error).__name__}).")
    return ProviderError(
        f"{provider} could not be reached ({type(error).__name__}).", code="provider_unreachable", retryable=True
    )


def iter_sse(provider: str, response: httpx.Response) -> Iterator[ServerSentEvent]:
    """The server-sent events of a streamed response, as they arrive, parsed by httpx-sse.

    Lines end at CR, LF or CRLF only (the SSE spec), so a U+2028 inside a JSON string stays in
    its event (httpx's iter_lines would split there). Events without data (an `id:` or
    `retry:` alone) are skipped, as the spec says. A response that is not an event stream is a
    ProviderError naming its content type, not a broken connection."""
    content_type = response.headers.get("content-type", "")
    if content_type.partition(";")[0].strip().lower() != "text/event-stream":
        raise ProviderError(
            f"{provider} answered a stream request with {content_type[:100] or 'no content type'},"
            " not an event stream.",
            upstream_status=response.status_code,
        )
    for event in EventSource(response).iter_sse():
        if event.data:
            yield event
