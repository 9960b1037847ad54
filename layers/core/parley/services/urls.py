"""Where Parley may send requests on a caller's behalf: https, public addresses only.

A stored base_url that resolved to 169.254.169.254 (instance metadata), a VPC address or
loopback would turn Parley into a proxy into the operator's network (SSRF), so outside local
mode such URLs are refused when they are stored. (DNS can change afterwards; the check is
repeated whenever the URL changes.)
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from parley.domain.errors import InvalidRequest

Resolver = Callable[[str, int], list[Any]]


def _system_resolver(host: str, port: int) -> list[Any]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def check_outbound_url(url: str, *, local: bool, param: str, resolver: Resolver | None = None) -> str:
    """The URL, normalised (no trailing slash), or a 400 naming `param`."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidRequest(f"{param} must be an absolute http(s) URL.", code="invalid_url", param=param)
    if parts.username or parts.password:
        raise InvalidRequest(f"{param} may not carry credentials; use api_key.", code="invalid_url", param=param)
    if parts.query or parts.fragment:
        raise InvalidRequest(f"{param} may not have a query or fragment.", code="invalid_url", param=param)
    if local:
        return url.rstrip("/")
    if parts.scheme != "https":
        raise InvalidRequest(f"{param} must use https.", code="invalid_url", param=param)
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            found = (resolver or _system_resolver)(parts.hostname, parts.port or 443)
        except OSError as exc:
            raise InvalidRequest(f"The host of {param} does not resolve.", code="invalid_url", param=param) from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in found]
        if not addresses:
            raise InvalidRequest(f"The host of {param} does not resolve.", code="invalid_url", param=param)
    for address in addresses:
        if not address.is_global:
            raise InvalidRequest(
                f"{param} points to a private, loopback or link-local address; only public hosts are allowed.",
                code="invalid_url",
                param=param,
            )
    return url.rstrip("/")
