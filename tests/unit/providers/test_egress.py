"""The egress guard (parley.egress): which addresses are refused, the write-time URL check, and
the connect-time transport that resolves, checks and pins, with TLS still on the hostname."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from parley import egress
from parley.egress import EgressRefused, GuardedTransport, check_url, is_blocked
from parley.providers.http import error_for_transport, make_client
from parley.settings import Settings, set_settings

PUBLIC = "93.184.216.34"


@pytest.mark.parametrize(
    "address",
    [
        # IPv4: loopback, private, link-local (instance metadata), shared, benchmark, reserved
        "127.0.0.1",
        "127.255.0.1",
        "10.0.0.7",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "198.18.0.1",
        "0.0.0.0",
        "240.0.0.1",
        "255.255.255.255",
        "224.0.0.1",  # multicast (Python calls it global)
        "192.0.0.8",  # IETF protocol assignments (Python calls it global)
        "192.0.2.1",  # documentation
        # IPv6's own
        "::1",
        "::",
        "fe80::1",
        "fd00::1",
        "fec0::1",  # deprecated site-local (Python calls it global)
        "ff02::1",  # multicast
        "2001:db8::1",  # documentation
        # IPv6 carrying a blocked IPv4 address
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "::127.0.0.1",  # IPv4-compatible (Python calls it global)
        "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1 (Python calls it global)
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1 (Python calls it global)
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
        # refused outright
        "64:ff9b:1::808:808",  # NAT64 local-use prefix (RFC 8215)
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    ],
)
def test_blocked_addresses(address: str) -> None:
    assert is_blocked(address)
    assert is_blocked(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        PUBLIC,
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::6810:84e5",
        "2a00:1450:4001:82a::200e",
        "::ffff:8.8.8.8",  # IPv4-mapped public
        "64:ff9b::808:808",  # NAT64 of a public address (DNS64 in an IPv6-only VPC)
        "2002:808:808::1",  # 6to4 of a public address
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert not is_blocked(address)


def resolving(*answers: list[str]) -> egress.Resolver:
    """A resolver that gives each answer in turn (the last one from then on), counting calls."""
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize(
    ("url", "answer", "why"),
    [
        ("http://api.example.com/v1", [PUBLIC], "must use https"),
        ("https://169.254.169.254/latest", [], "non-public address"),
        ("https://[::ffff:169.254.169.254]/latest", [], "non-public address"),
        ("https://[64:ff9b::a9fe:a9fe]/latest", [], "non-public address"),
        ("https://internal.example.com", ["10.0.0.7"], "non-public address"),
        ("https://sneaky.example.com", [PUBLIC, "127.0.0.1"], "non-public address"),
        ("https://nat64.example.com", ["64:ff9b::7f00:1"], "non-public address"),
        ("https://nowhere.example.com", [], "does not resolve"),
        ("https://user:pw@api.example.com", [PUBLIC], "may not carry credentials"),
        ("https://api.example.com/v1?x=1", [PUBLIC], "may not have a query"),
        ("ftp://api.example.com", [PUBLIC], "absolute http(s) URL"),
        ("https://api.example.com:99999", [PUBLIC], "is not a valid URL"),
        ("https://api.example.com:abc/v1", [PUBLIC], "is not a valid URL"),
        ("https://[::1/v1", [PUBLIC], "is not a valid URL"),
    ],
)
def test_check_url_refuses_outside_local_mode(url: str, answer: list[str], why: str) -> None:
    with pytest.raises(EgressRefused, match=why.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        check_url(url, local=False, resolve=resolving(answer))


def test_check_url_normalises_and_allows_anything_http_in_local_mode() -> None:
    assert check_url("https://api.example.com/v1/", local=False, resolve=resolving([PUBLIC])) == (
        "https://api.example.com/v1"
    )
    assert check_url("http://127.0.0.1:11434/v1", local=True) == "http://127.0.0.1:11434/v1"
    with pytest.raises(EgressRefused):
        check_url("https://user:pw@localhost", local=True)


def test_a_resolver_failure_is_a_refusal_not_a_crash() -> None:
    def broken(host: str, port: int) -> list[str]:
        raise socket.gaierror("no such name")

    with pytest.raises(EgressRefused, match="does not resolve"):
        check_url("https://gone.example.com", local=False, resolve=broken)

    def idna(host: str, port: int) -> list[str]:
        host.encode("idna")  # what getaddrinfo does first: an empty label cannot be encoded
        return [PUBLIC]

    with pytest.raises(EgressRefused, match="does not resolve"):
        check_url("https://a..b.example.com", local=False, resolve=idna)
    with pytest.raises(EgressRefused, match="other than an IP address"):
        check_url("https://odd.example.com", local=False, resolve=resolving(["not-an-ip"]))


# -- connect time -----------------------------------------------------------------------------


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections made to it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.3)
        self.port = self.sock.getsockname()[1]

    def connections(self) -> int:
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                return count
            conn.close()
            count += 1


@pytest.fixture
def listener() -> Iterator[Listener]:
    it = Listener()
    yield it
    it.sock.close()


def test_dns_rebinding_is_refused_at_connect_time(listener: Listener) -> None:
    """The name resolves to a public address when the URL is checked, to 127.0.0.1 when called."""
    resolve = resolving([PUBLIC], ["127.0.0.1"])
    url = f"https://rebind.example.com:{listener.port}/v1"
    assert check_url(url, local=False, resolve=resolve) == url
    with httpx.Client(transport=GuardedTransport(resolve=resolve)) as client, pytest.raises(EgressRefused) as refused:
        client.post(f"{url}/chat/completions", json={})
    assert "non-public address" in str(refused.value)
    assert "127.0.0.1" not in str(refused.value)  # no resolved address in the message
    assert resolve.calls == ["rebind.example.com", "rebind.example.com"]  # type: ignore[attr-defined]
    assert listener.connections() == 0


@pytest.mark.parametrize("answer", [["127.0.0.1"], ["::ffff:127.0.0.1"], [PUBLIC, "127.0.0.1"]])
def test_the_transport_refuses_blocked_answers_and_literals(listener: Listener, answer: list[str]) -> None:
    with httpx.Client(transport=GuardedTransport(resolve=resolving(answer))) as client:
        with pytest.raises(EgressRefused):
            client.get(f"https://host.example.com:{listener.port}/")
        with pytest.raises(EgressRefused):
            client.get(f"https://127.0.0.1:{listener.port}/")
    assert listener.connections() == 0


def test_the_transport_refuses_plain_http(listener: Listener) -> None:
    transport = GuardedTransport(resolve=resolving([PUBLIC]))
    with httpx.Client(transport=transport) as client, pytest.raises(EgressRefused, match="must use https"):
        client.get(f"http://api.example.com:{listener.port}/")


def test_a_refusal_is_a_502_provider_error_that_is_not_retried() -> None:
    error = error_for_transport("openai", EgressRefused("points to a private ... address"))
    assert error.status == 502
    assert error.code == "egress_refused"
    assert not error.retryable
    assert "was not called" in error.message


def test_provider_clients_are_guarded_outside_local_mode(listener: Listener) -> None:
    set_settings(Settings(stage="prod"))
    egress.set_resolver(resolving(["127.0.0.1"]))
    try:
        with make_client() as client, pytest.raises(EgressRefused):
            client.get(f"https://api.example.com:{listener.port}/")
    finally:
        egress.set_resolver(None)
    assert listener.connections() == 0
    set_settings(Settings(stage="local"))
    # Local mode: no guard (a model server on localhost is fine). The listener never answers,
    # but it was reached.
    with make_client() as client, pytest.raises(httpx.ReadTimeout):
        client.get(f"http://127.0.0.1:{listener.port}/", timeout=0.5)
    assert listener.connections() == 1


def test_the_default_stage_is_not_local() -> None:
    assert not Settings().local
    assert not Settings.from_env({}).local
    assert Settings.from_env({"PARLEY_STAGE": "local"}).local


# -- pinning with TLS on the hostname ---------------------------------------------------------


def _certificates(tmp: Path, hostname: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for `hostname` only (no IP address in it)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "parley test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


class TlsServer:
    """An HTTPS server on 127.0.0.1 that records the SNI name and Host header it was sent."""

    def __init__(self, tmp: Path, hostname: str) -> None:
        ca, cert, key = _certificates(tmp, hostname)
        self.ca = ca
        self.sni: list[str | None] = []
        self.hosts: list[str | None] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)  # type: ignore[assignment,func-returns-value]
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse shows

            def do_GET(self) -> None:
                server.hosts.append(self.headers.get("Host"))
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    server = TlsServer(tmp_path, "api.pinned.test")
    yield server
    server.close()


def _loopback_allowed(address: egress.Address) -> bool:
    return not address.is_loopback  # the default policy, loosened to reach the test server


def test_the_transport_connects_to_the_checked_address_with_tls_and_host_on_the_name(tls_server: TlsServer) -> None:
    resolve = resolving(["127.0.0.1"])
    trust = ssl.create_default_context(cafile=str(tls_server.ca))
    transport = GuardedTransport(resolve=resolve, blocked=_loopback_allowed, verify=trust)
    with httpx.Client(transport=transport) as client:
        for _ in range(2):
            reply = client.get(f"https://api.pinned.test:{tls_server.port}/v1/models")
            assert reply.status_code == 200
            assert reply.json() == {"ok": True}
    assert tls_server.sni == ["api.pinned.test"]  # one TLS handshake, named by the host, not the IP
    assert tls_server.hosts == [f"api.pinned.test:{tls_server.port}"] * 2
    assert resolve.calls == ["api.pinned.test"]  # type: ignore[attr-defined]  # the pooled connection is reused


def test_the_certificate_is_verified_against_the_name_not_the_address(tls_server: TlsServer) -> None:
    trust = ssl.create_default_context(cafile=str(tls_server.ca))
    transport = GuardedTransport(resolve=resolving(["127.0.0.1"]), blocked=_loopback_allowed, verify=trust)
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"):
        client.get(f"https://other.pinned.test:{tls_server.port}/v1/models")  # the cert names api.pinned.test


def test_the_next_checked_address_is_tried_when_one_does_not_answer(tls_server: TlsServer) -> None:
    # The server listens on 127.0.0.1 only, so 127.0.0.2 (loopback too) refuses the connection.
    trust = ssl.create_default_context(cafile=str(tls_server.ca))
    resolve = resolving(["127.0.0.2", "127.0.0.1"])
    transport = GuardedTransport(resolve=resolve, blocked=_loopback_allowed, verify=trust)
    with httpx.Client(transport=transport) as client:
        assert client.get(f"https://api.pinned.test:{tls_server.port}/").status_code == 200
    assert tls_server.sni == ["api.pinned.test"]
