"""Shared fixtures: moto-backed AWS, issued API keys, handlers loaded from the route table,
and the sample API Gateway events of events/api/."""

from __future__ import annotations

import copy
import ipaddress
import json
import logging
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from parley.api.routing import RouteTable, load_module, load_route_table
from parley.aws import set_clients
from parley.runtime.local import LOCAL_ENV
from parley.services.keys import IssuedKey, issue_key
from parley.settings import set_settings
from parley.storage.provision import provision

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events" / "api"
_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect


def _loopback(host: object) -> bool:
    if host in (None, "localhost", b"localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host if not isinstance(host, bytes) else host.decode())).is_loopback
    except ValueError:
        return False


def _guarded_getaddrinfo(host: object, *args: Any, **kwargs: Any) -> Any:
    if not _loopback(host):
        raise OSError(f"tests may not reach the network (lookup of {host!r})")
    return _real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        raise OSError(f"tests may not reach the network (connect to {address!r})")
    return _real_connect(self, address)


# Provider keys the tests use. No log record of any test may contain one (see _no_secrets_in_logs).
PROVIDER_KEYS = ("sk-live-supersecret-key-1234", "sk-new-key-9876", "sk-proj-do-not-leak-0000XYZ9")


class _SecretScan(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage() + repr(record.__dict__.get("extra", "")) + str(record.exc_info or "")
        self.leaks.extend(f"{record.name}: {key}" for key in PROVIDER_KEYS if key in text)


_scan = _SecretScan()


def pytest_configure(config: pytest.Config) -> None:
    """Nothing in the tests may leave this machine: only loopback lookups and connections work.
    And every log record at INFO and above, of every test, is scanned for provider keys."""
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    logging.getLogger().addHandler(_scan)
    logging.getLogger("parley").setLevel(logging.INFO)


@pytest.fixture(autouse=True)
def _no_secrets_in_logs() -> Iterator[None]:
    before = len(_scan.leaks)
    yield
    leaked = _scan.leaks[before:]
    assert not leaked, f"a provider key reached the logs: {leaked}"


def pytest_unconfigure(config: pytest.Config) -> None:
    socket.getaddrinfo = _real_getaddrinfo
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def route_table() -> RouteTable:
    return load_route_table(ROOT / "functions" / "routes.py")


@pytest.fixture(autouse=True)
def _local_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake AWS credentials and local defaults; nothing can reach real AWS."""
    for name, value in LOCAL_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PARLEY_ECHO_DELAY_MS", raising=False)
    set_settings(None)
    set_clients(None)
    yield
    set_settings(None)
    set_clients(None)


@pytest.fixture
def aws() -> Iterator[None]:
    """Moto with every Parley table created from the shared schema, the documents bucket and the metering queue."""
    from parley.search import factory as search
    from parley.search.local import LocalSearchEngine
    from parley.services import limits
    from parley.services.providers import call_cache

    call_cache().clear()  # provider ids and defaults of an earlier test's (gone) moto state
    limits.clear_cache()  # spend read for budgets
    # a search engine of the test's own (the local one, in a fresh file): nothing of another test's
    folder = tempfile.mkdtemp(prefix="parley-search-")
    search.set_engine(LocalSearchEngine(Path(folder) / "search.sqlite3"))
    try:
        with mock_aws():
            provision()
            yield
    finally:
        search.set_engine(None)
        shutil.rmtree(folder, ignore_errors=True)
    call_cache().clear()


@pytest.fixture
def api_key(aws: None) -> IssuedKey:
    return issue_key("org_test", "proj_test", ("*",), name="test")


_handlers: dict[str, Any] = {}


@pytest.fixture
def load_handler(route_table: RouteTable) -> Any:
    """The lambda_handler of functions/<name>/handler.py (each module loaded once per session)."""

    def load(function: str) -> Any:
        if function not in _handlers:
            _handlers[function] = load_module(route_table.handler_path(function), f"test_function_{function}")
        return _handlers[function].lambda_handler

    return load


@pytest.fixture
def sample_event() -> Any:
    """A copy of events/api/<function>.json, optionally with another body and authorizer context."""

    def make(function: str, body: Any = ..., *, authorizer: Any = ..., raw_body: str | None = None) -> dict[str, Any]:
        event: dict[str, Any] = copy.deepcopy(json.loads((EVENTS / f"{function}.json").read_text()))
        if raw_body is not None:
            event["body"] = raw_body
        elif body is not ...:
            event["body"] = json.dumps(body)
        if authorizer is not ...:
            event["requestContext"]["authorizer"] = authorizer
        return event

    return make


class Context:
    function_name = "test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "test-request"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> Context:
    return Context()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The schemathesis figures (tests/local/test_schemathesis.py), also under xdist and -q (here, not in
    tests/local/conftest.py: under xdist the controller loads only this conftest)."""
    lines = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == "schemathesis"
    ]
    if lines:
        terminalreporter.write_sep("-", "schemathesis")
        for line in lines:
            terminalreporter.write_line(line)
