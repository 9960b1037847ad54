"""Where Parley may send requests on a caller's behalf, checked when a URL is written.

The rules live in parley.egress (shared with the connect-time guard every outbound HTTP client
uses outside local mode); here a refusal becomes a 400 naming the field.

Two policies: a provider's base URL (`check_outbound_url(local=settings.local)`: in local mode
any http(s) URL, a model server on localhost being the point there) and a callback URL that
Parley calls with the caller's data, a webhook endpoint or an http tool (`check_callback_url`:
https to a public host, and in local mode also http(s) to loopback, a receiver on 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from parley.domain.errors import InvalidRequest
from parley.egress import EgressRefused, Resolver, check_url
from parley.settings import get_settings

__all__ = ["Resolver", "check_callback_url", "check_outbound_url"]


def check_outbound_url(url: str, *, local: bool, param: str, resolver: Resolver | None = None) -> str:
    """The URL, normalised (no trailing slash), or a 400 naming `param`."""
    try:
        return check_url(url, local=local, resolve=resolver)
    except EgressRefused as refused:
        raise InvalidRequest(f"{param} {refused}.", code="invalid_url", param=param) from None


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_callback_url(url: str, *, param: str, resolver: Resolver | None = None) -> str:
    """A webhook's or an http tool's URL: https to a public host; in local mode also http(s) to
    loopback. The URL normalised, or a 400 naming `param`."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    loopback = get_settings().local and _is_loopback(host)
    return check_outbound_url(url, local=loopback, param=param, resolver=resolver)
