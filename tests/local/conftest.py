"""The local server (`make serve`'s), started as a subprocess on 127.0.0.1 with a free port."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "prl_local_test_key_0123456789"


@dataclass
class Server:
    url: str
    key: str
    process: subprocess.Popen[str]
    started_in: float
    output: list[str] = field(default_factory=list)  # every line the server printed, as it prints them
    drain: threading.Thread | None = None

    def wait_exit(self, timeout: float = 15) -> str:
        """Wait for the process to end; everything it printed."""
        self.process.wait(timeout=timeout)
        if self.drain is not None:
            self.drain.join(timeout=5)
        return "".join(self.output)

    def lines(self, containing: str) -> list[str]:
        return [line for line in list(self.output) if containing in line]

    def wait_for_line(self, containing: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.lines(containing)
            if found:
                return found[-1]
            time.sleep(0.02)
        raise AssertionError(f"the server printed no line with {containing!r}:\n" + "".join(self.output[-20:]))


def start_server(*args: str, key: str | None = KEY, **env: str) -> Server:
    """A server on a free port; in memory (--ephemeral) unless `args` name a --data-dir.
    key=None lets the server choose (or reuse) its key; Server.key is then the printed one."""
    started = time.monotonic()
    options = list(args) if "--data-dir" in args else ["--ephemeral", *args]
    environment = {**os.environ, **env}
    environment.pop("PARLEY_LOCAL_API_KEY", None)
    if key is not None:
        environment["PARLEY_LOCAL_API_KEY"] = key
    process = subprocess.Popen(
        [sys.executable, "-m", "parley.runtime.local", "--port", "0", *options],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    url = None
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"local API on (http://127\.0\.0\.1:\d+)", line)
        url = url or (found.group(1) if found else None)
        printed = re.search(r"API key: (\S+)", line)
        key = key or (printed.group(1) if printed else None)
        if "ready" in line:
            break
    if url is None or process.poll() is not None:
        process.kill()
        raise RuntimeError("local server did not start:\n" + "".join(lines))
    assert key is not None
    server = Server(url, key, process, time.monotonic() - started, lines)
    # Keep reading: a server whose log pipe fills up blocks on its next log line.
    server.drain = threading.Thread(target=_drain, args=(process, lines), daemon=True)
    server.drain.start()
    return server


def _drain(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)


def run_module(
    module: str, *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m module args...` to completion (a minute at most), its output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """One server for the session; the echo model pauses 200 ms between streamed words."""
    running = start_server(PARLEY_ECHO_DELAY_MS="200")
    yield running
    stop_server(running)
