"""The one guard for every request Parley sends on a caller's behalf (providers now; webhooks and
HTTP tools later): outside local mode, https only and public addresses only.

A stored URL that reached 169.254.169.254 (instance metadata), a VPC address or loopback would
turn Parley into a proxy into the operator's network (SSRF). Checking the name when the URL is
stored is not enough: DNS can answer differently a second later (rebinding). So the check runs
twice:

- `check_url` when a URL is written (a clear 400 for the caller), and
- `GuardedTransport` at connect time: an httpx transport whose network backend resolves the
  host itself, refuses it if any address is blocked, and connects to a checked address. TLS
  (SNI and certificate verification) and the Host header still use the hostname, because
  httpcore takes both from the request's origin, not from the address connected to.

`is_blocked` covers what Python's `is_global` misses: multicast, the deprecated site-local
range, and IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:0:0/96`, IPv4-compatible
`::/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`): those are judged by the IPv4 address they
carry, so `64:ff9b::7f00:1` is loopback. The NAT64 local-use prefix `64:ff9b:1::/48` (RFC 8215,
operator-defined embedding) and Teredo `2001::/32` are refused outright.

Everything here is domain-free: failures are `EgressRefused`, an `httpx.TransportError`, so any
httpx caller's transport-error handling sees them; callers map them to their own errors.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    import httpcore

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> the IP addresses the host resolves to, as strings."""

_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
_TEREDO = ipaddress.ip_network("2001::/32")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# IANA: 192.0.0.0/24 (IETF protocol assignments) is not globally reachable; Python's
# is_global says otherwise for most of it.
_IPV4_EXTRA_BLOCKED = (ipaddress.ip_network("192.0.0.0/24"),)


class EgressRefused(httpx.TransportError):
    """A destination Parley may not reach. The message completes "the URL ..." and names no
    resolved address (which would tell a caller how internal names resolve)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def is_blocked(address: Address | str) -> bool:
    """Whether Parley must not connect to this address outside local mode."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv4Address):
        return (
            not ip.is_global
            or ip.is_multicast
            or ip.is_unspecified
            or any(ip in network for network in _IPV4_EXTRA_BLOCKED)
        )
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return is_blocked(embedded)
    if ip in _NAT64_LOCAL_USE or ip in _TEREDO:
        return True
    return not ip.is_global or ip.is_multicast or ip.is_site_local or ip.is_unspecified or ip.is_reserved


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, in the forms that carry one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64_WELL_KNOWN or (ip in _IPV4_COMPATIBLE and int(ip) > 1):  # :: and ::1 are IPv6's own
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (getaddrinfo), without duplicates."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


_resolver: Resolver | None = None
_lock = threading.Lock()


def resolver() -> Resolver:
    """The process's resolver: the system's unless one was injected."""
    return _resolver or system_resolver


def set_resolver(new: Resolver | None) -> None:
    """Inject a resolver (tests); None restores the system's."""
    global _resolver
    with _lock:
        _resolver = new


def checked_addresses(
    host: str, port: int, resolve: Resolver | None = None, blocked: Callable[[Address], bool] = is_blocked
) -> list[Address]:
    """The host's addresses if every one may be reached; EgressRefused otherwise.

    A literal address is checked as it is. All addresses must pass, not just one: a name that
    mixes public and private answers could connect to either."""
    addresses = _literal(host)
    if addresses is None:
        try:
            answers = (resolve or resolver())(host, port)
        except (OSError, UnicodeError):  # UnicodeError: a name IDNA cannot encode (an empty label...)
            raise EgressRefused("has a host that does not resolve") from None
        addresses = []
        for answer in answers:
            parsed = _literal(answer)
            if parsed is None:
                raise EgressRefused("has a host that resolves to something other than an IP address")
            addresses += parsed
        if not addresses:
            raise EgressRefused("has a host that does not resolve")
    if any(blocked(address) for address in addresses):
        raise EgressRefused(
            "points to a private, loopback, link-local or otherwise non-public address; only public hosts are allowed"
        )
    return addresses


def _literal(text: str) -> list[Address] | None:
    try:
        return [ipaddress.ip_address(text)]
    except ValueError:
        return None


def check_url(url: str, *, local: bool, resolve: Resolver | None = None) -> str:
    """The URL without a trailing slash, if Parley may send requests to it; EgressRefused otherwise.

    In local mode any http(s) URL passes (a model server on localhost is the point there)."""
    try:
        parts = urlsplit(url)
        port = parts.port
        httpx.URL(url)  # what will send the requests must take it too
    except (ValueError, httpx.InvalidURL):
        raise EgressRefused("is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise EgressRefused("must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise EgressRefused("may not carry credentials")
    if parts.query or parts.fragment:
        raise EgressRefused("may not have a query or fragment")
    if not local:
        if parts.scheme != "https":
            raise EgressRefused("must use https")
        checked_addresses(parts.hostname, port or 443, resolve)
    return url.rstrip("/")


# -- connect time ---------------------------------------------------------------------------------


def _guarded_backend(resolve: Resolver | None, blocked: Callable[[Address], bool]) -> httpcore.NetworkBackend:
    import httpcore  # noqa: PLC0415 - httpx imports it lazily too; only needed once a client is built

    class GuardedBackend(httpcore.NetworkBackend):
        """httpcore's sync backend, but the host is resolved and checked here and the TCP
        connection goes to a checked address (tried in order), never to a second lookup."""

        def __init__(self) -> None:
            self._inner = httpcore.SyncBackend()

        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore.NetworkStream:
            addresses = checked_addresses(host, port, resolve, blocked)
            last: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
            for address in addresses:
                try:
                    return self._inner.connect_tcp(
                        str(address),
                        port,
                        timeout=timeout,
                        local_address=local_address,
                        socket_options=socket_options,
                    )
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                    last = exc  # the next checked address may answer; the last failure is raised
            assert last is not None  # checked_addresses never returns an empty list
            raise last

        def connect_unix_socket(
            self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
        ) -> httpcore.NetworkStream:
            raise EgressRefused("is a unix socket, which is not an allowed destination")

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    return GuardedBackend()


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport that only reaches public https hosts, checked at connect time.

    `resolve` defaults to the process's resolver (looked up per connection, so one injected
    later is used); `blocked` is the address policy (tests may loosen it to reach a server on
    127.0.0.1, which is how the pinning itself is tested)."""

    def __init__(
        self,
        *,
        resolve: Resolver | None = None,
        blocked: Callable[[Address], bool] = is_blocked,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),  # noqa: B008
    ) -> None:
        import httpcore  # noqa: PLC0415

        ssl_context = httpx.create_ssl_context(verify=verify)  # built once; httpx returns a context as is
        super().__init__(verify=ssl_context, limits=limits)
        # httpx's HTTPTransport has no network_backend parameter: its connection pool (a
        # private attribute since httpx 0.18) is replaced by one with the same settings and
        # the guarded backend. The pinning tests fail if a new httpx changes this.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_guarded_backend(resolve, blocked),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "https":
            raise EgressRefused("must use https")
        return super().handle_request(request)
