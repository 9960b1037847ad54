"""Where Parley may send requests on a caller's behalf, checked when a URL is written.

The rules live in parley.egress (shared with the connect-time guard every outbound HTTP client
uses outside local mode); here a refusal becomes a 400 naming the field.
"""

from __future__ import annotations

from parley.domain.errors import InvalidRequest
from parley.egress import EgressRefused, Resolver, check_url

__all__ = ["Resolver", "check_outbound_url"]


def check_outbound_url(url: str, *, local: bool, param: str, resolver: Resolver | None = None) -> str:
    """The URL, normalised (no trailing slash), or a 400 naming `param`."""
    try:
        return check_url(url, local=local, resolve=resolver)
    except EgressRefused as refused:
        raise InvalidRequest(f"{param} {refused}.", code="invalid_url", param=param) from None
