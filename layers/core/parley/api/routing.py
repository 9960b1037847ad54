"""The route table's vocabulary. functions/routes.py lists the routes; CDK and the local
server both read that one table (`load_route_table`)."""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Literal

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
# Parley's own API, and OpenAI's surface (its exact shapes, for OpenAI(base_url=".../openai/v1")).
API_PREFIXES = ("/v1/", "/openai/v1/")
_PARAM = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway form: /v1/things/{thing_id}
    function: str  # directory under functions/ holding handler.py
    permission: str | None  # None: no API key needed (health)
    streaming: bool = False
    resources: tuple[str, ...] = ()  # tables (and later secrets, buses) the function may use
    timeout_seconds: int = 29
    memory_mb: int = 512
    description: str = ""
    params: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.method not in HTTP_METHODS:
            raise ValueError(f"{self.method} is not an HTTP method")
        if not self.path.startswith(API_PREFIXES):
            raise ValueError(f"{self.path}: every route lives under /v1/ (or OpenAI's surface, /openai/v1/)")
        if self.permission is not None and not re.fullmatch(r"[a-z_]+:([A-Z][A-Za-z]+|\*)", self.permission):
            raise ValueError(f"{self.permission!r} is not a <resource>:<Action> permission")
        object.__setattr__(self, "params", tuple(_PARAM.findall(self.path)))
        if self.method == "POST" and "idempotency" not in self.resources:
            # Every POST honours Idempotency-Key (parley.api.idempotency), so it needs that table.
            object.__setattr__(self, "resources", (*self.resources, "idempotency"))

    @property
    def powertools_path(self) -> str:
        """The same path in Powertools' resolver syntax: /v1/things/<thing_id>."""
        return _PARAM.sub(r"<\1>", self.path)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters if this route serves (method, path), else None."""
        if method != self.method:
            return None
        want, got = self.path.strip("/").split("/"), path.strip("/").split("/")
        if len(want) != len(got):
            return None
        params: dict[str, str] = {}
        for pattern, segment in zip(want, got, strict=True):
            if pattern.startswith("{"):
                if not segment:
                    return None
                params[pattern[1:-1]] = segment
            elif pattern != segment:
                return None
        return params


@dataclass(frozen=True)
class Scheduled:
    """A function run on a schedule (no route): functions/<function>/handler.py."""

    function: str
    every_minutes: int
    resources: tuple[str, ...] = ()
    timeout_seconds: int = 300
    memory_mb: int = 512
    description: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.every_minutes <= 1440:
            raise ValueError(f"{self.function}: every_minutes must be 1..1440")
        if not 1 <= self.timeout_seconds <= 900:
            raise ValueError(f"{self.function}: timeout_seconds must be 1..900")


@dataclass(frozen=True)
class Consumer:
    """A function fed by an event source (no route): functions/<function>/handler.py.

    `stream`: DynamoDB Streams of the logical tables in `sources` (an event source mapping per
    table; batches of `batch_size`, ReportBatchItemFailures, bisect on error, then `dead_letter`).
    `queue`: the SQS queues in `sources` (ReportBatchItemFailures; a message received 5 times,
    the events stack's MAX_RECEIVES, goes to the queue's DLQ). CDK wires both; the local server polls them
    and invokes the same handler with the same event shapes."""

    function: str
    kind: Literal["stream", "queue"]
    sources: tuple[str, ...]
    batch_size: int = 100
    resources: tuple[str, ...] = ()
    timeout_seconds: int = 60
    memory_mb: int = 512
    max_attempts: int = 5  # stream: retries of a failing batch before it goes to dead_letter
    dead_letter: str | None = None  # stream: the queue a batch that keeps failing is reported to
    description: str = ""

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError(f"{self.function}: a consumer needs at least one source")
        if not 1 <= self.batch_size <= (1000 if self.kind == "stream" else 10):
            raise ValueError(f"{self.function}: batch_size out of range for a {self.kind} source")
        if not 1 <= self.timeout_seconds <= 900:
            raise ValueError(f"{self.function}: timeout_seconds must be 1..900")


@dataclass(frozen=True)
class RouteTable:
    routes: tuple[Route, ...]
    authorizer: str  # the function that authenticates API keys
    root: Path  # the functions/ directory
    scheduled: tuple[Scheduled, ...] = ()
    consumers: tuple[Consumer, ...] = ()
    # How long API Gateway (and the local server) cache an authorization: a revoked key's bound.
    authorizer_cache_seconds: int = 30

    def __post_init__(self) -> None:
        if not 0 <= self.authorizer_cache_seconds <= 60:
            raise ValueError("authorizer_cache_seconds must be 0..60 (revocation is promised within 60 s)")

    def handler_path(self, function: str) -> Path:
        return self.root / function / "handler.py"

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        # A literal segment wins over a parameter (/v1/x/search before /v1/x/{id}), as in API Gateway.
        for route in sorted(self.routes, key=lambda r: len(r.params)):
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None

    def allowed_methods(self, path: str) -> list[str]:
        return sorted({r.method for r in self.routes if r.match(r.method, path) is not None})

    def functions(self) -> list[str]:
        return sorted({r.function for r in self.routes})


def load_module(path: Path, name: str) -> ModuleType:
    """Import a Python file by path under a given module name (handlers are not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered like any import (Lambda imports handler.py as a module): pydantic looks a module's
    # parametrized generics (Page[Chat]) up in sys.modules.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_route_table(path: Path) -> RouteTable:
    module = load_module(path, "parley_route_table")
    table = module.TABLE
    if not isinstance(table, RouteTable):
        raise TypeError(f"{path} must define TABLE = RouteTable(...)")
    return table
