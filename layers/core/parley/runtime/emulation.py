"""The local server's AWS: one moto endpoint on 127.0.0.1 that every execution environment
reaches by endpoint URL, serialised by one lock, and kept on disk.

moto is not thread-safe (concurrent TransactWriteItems raise "dictionary changed size during
iteration"), so every request into it takes one lock: invocations run concurrently, their
calls into the emulation one at a time, each a few milliseconds.

Persistence: moto keeps its state in per-service backend objects. After a request that may
have changed something, the state is due for a snapshot; a background thread takes one at
most once per `interval` seconds: it pickles the backends while holding the same lock (a
consistent point in time, never half a transaction), then writes the bytes to a temporary
file, fsyncs it and renames it over the previous snapshot. A `kill -9` therefore loses at
most the writes of the last interval, and the folder always holds one whole snapshot. A
version tag (state format and moto's major.minor version, whose pickled objects it holds)
is checked before anything is loaded.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("parley.local.emulation")

STATE_FORMAT = 1
STATE_FILE = "state.pickle"
VERSION_FILE = "VERSION.json"
# The services whose backends hold Parley's state (tables, secrets, documents, queues, buses).
SERVICES = ("dynamodb", "secretsmanager", "s3", "sqs", "events")
# Requests that change nothing: everything else makes the state due for a snapshot.
_READ_PREFIXES = ("Get", "List", "Describe", "Query", "Scan", "BatchGet", "Head")


class IncompatibleState(Exception):
    """The data folder was written by a version whose state this one cannot load."""


def moto_version() -> str:
    import moto  # noqa: PLC0415 - a development dependency, loaded only by the local server

    return ".".join(moto.__version__.split(".")[:2])


def version_tag() -> dict[str, Any]:
    return {"format": STATE_FORMAT, "moto": moto_version()}


def _backend_dicts() -> dict[str, Any]:
    from moto.backends import get_backend  # noqa: PLC0415

    return {service: get_backend(service) for service in SERVICES}  # type: ignore[call-overload]


_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


class _Pickler(pickle.Pickler):
    """Pickles moto's backends; a lock inside one (SQS queues hold an RLock) comes back as a new
    lock, free: the snapshot is taken under the emulation's lock, when no request holds any."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK_TYPES):
            return (threading.RLock if "RLock" in type(obj).__name__ else threading.Lock), ()
        return NotImplemented


def capture() -> bytes:
    """Every existing backend of every persisted service, pickled (call with the emulation lock held)."""
    state: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    for service, backends in _backend_dicts().items():
        state[service] = {}
        for account, regions in backends.items():
            for region, backend in regions.items():
                state[service][(account, region)] = backend.__dict__
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump({"tag": version_tag(), "state": state})
    return buffer.getvalue()


def apply(blob: bytes) -> None:
    """Put a captured state back into moto's backends."""
    loaded = pickle.loads(blob)  # noqa: S301 - the user's own data folder, written by capture()
    if loaded.get("tag") != version_tag():
        raise IncompatibleState(f"snapshot tag {loaded.get('tag')} != {version_tag()}")
    backends = _backend_dicts()
    for service, entries in loaded["state"].items():
        for (account, region), attributes in entries.items():
            backends[service][account][region].__dict__.update(attributes)


def is_write(environ: dict[str, Any]) -> bool:
    """Whether a request into moto may change state (unknown requests count as writes)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:  # JSON protocols (DynamoDB, Secrets Manager, SQS, EventBridge): Service.Operation
        return not target.rsplit(".", 1)[-1].startswith(_READ_PREFIXES)
    method = environ.get("REQUEST_METHOD", "GET")
    if method in ("GET", "HEAD"):
        return False
    query = environ.get("QUERY_STRING", "")
    # Query protocol (form-encoded Action=...): reads are Get/List/Describe/Receive-less.
    return not any(f"Action={prefix}" in query for prefix in _READ_PREFIXES)


class _Serialised:
    """WSGI middleware: one request at a time into moto; writes mark the state dirty."""

    def __init__(self, app: Callable[..., Any], lock: threading.Lock, dirty: Callable[[], None]) -> None:
        self.app, self.lock, self.dirty = app, lock, dirty

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self.lock:
            body = list(self.app(environ, start_response))
            if is_write(environ):
                self.dirty()
        return body


@dataclass
class Stats:
    snapshots: int = 0
    last_snapshot_ms: float = 0.0
    last_snapshot_bytes: int = 0


class Emulation:
    """moto on 127.0.0.1 (a random free port), optionally persisted under `data_dir`."""

    def __init__(self, data_dir: Path | None, *, interval: float = 1.0) -> None:
        self.data_dir = data_dir
        self.interval = interval
        self.lock = threading.Lock()
        self.stats = Stats()
        self.restored = False
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._server: Any = None
        self._threads: list[threading.Thread] = []

    # lifecycle
    def start(self) -> None:
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server  # noqa: PLC0415

        from parley.runtime import moto_speedups  # noqa: PLC0415

        moto_speedups.install()
        if self.data_dir is not None:
            self._load()
        # Without TCP_NODELAY each AWS call from an environment waits ~40 ms for a delayed ACK.
        handler = type("Handler", (MotoRequestHandler,), {"disable_nagle_algorithm": True})
        app = _Serialised(DomainDispatcherApplication(create_backend_app), self.lock, self._dirty.set)
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=handler)
        self._spawn(self._server.serve_forever, "moto")
        if self.data_dir is not None:
            self._spawn(self._persist_loop, "snapshots")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=f"parley-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop serving, then write a last snapshot of whatever is pending."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.data_dir is not None and self._dirty.is_set():
            self.snapshot()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # persistence
    def _load(self) -> None:
        assert self.data_dir is not None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tag_file, state_file = self.data_dir / VERSION_FILE, self.data_dir / STATE_FILE
        if tag_file.exists():
            try:
                tag = json.loads(tag_file.read_text())
            except ValueError as exc:
                raise IncompatibleState(f"{tag_file} is not a Parley version tag ({exc})") from exc
            if tag != version_tag():
                raise IncompatibleState(
                    f"{self.data_dir} holds state written with {tag}, this server writes {version_tag()}"
                )
        elif state_file.exists():
            raise IncompatibleState(f"{state_file} has no version tag ({tag_file} is missing)")
        else:
            _write_atomically(tag_file, json.dumps(version_tag()).encode())
        if state_file.exists():
            apply(state_file.read_bytes())
            self.restored = True

    def snapshot(self) -> None:
        """Capture under the lock (consistent), write outside it (the server stays responsive)."""
        assert self.data_dir is not None
        started = time.perf_counter()
        with self.lock:
            self._dirty.clear()
            blob = capture()
        _write_atomically(self.data_dir / STATE_FILE, blob)
        self.stats.snapshots += 1
        self.stats.last_snapshot_ms = (time.perf_counter() - started) * 1000
        self.stats.last_snapshot_bytes = len(blob)
        log.debug("snapshot: %d bytes in %.1f ms", len(blob), self.stats.last_snapshot_ms)

    def _persist_loop(self) -> None:
        while not self._stopping.wait(self.interval):
            if not self._dirty.is_set():
                continue
            try:
                self.snapshot()
            except Exception:
                # A full disk, a vanished folder, an object moto cannot pickle: shown every round until fixed.
                self._dirty.set()
                log.exception("could not write the snapshot to %s; retrying in %.0f s", self.data_dir, self.interval)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, rename over `path`, fsync the folder."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
