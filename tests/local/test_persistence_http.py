"""State under the data folder: it survives Ctrl-C and restart, survives kill -9 for writes older
than a second, and a folder written by an incompatible version is refused with a clear message."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.local.conftest import Server, run_module, start_server

pytestmark = pytest.mark.local


def client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60)


def write_state(server: Server) -> dict[str, str]:
    """A provider (with a stored api_key secret), a conversation with two messages, and a document."""
    with client(server) as http:
        provider = http.post(
            "/v1/providers",
            json={"type": "openai", "name": "kept", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-kept-0000"},
        )
        assert provider.status_code == 201, provider.text
        conversation = http.post("/v1/conversations", json={"title": "kept"}).json()
        sent = http.post(f"/v1/conversations/{conversation['id']}/messages", json={"content": "remember me"})
        assert sent.status_code == 200, sent.text
        document = http.post("/v1/documents", json={"name": "kept.md", "content": "kept text"})
        assert document.status_code == 201, document.text
    return {"provider": provider.json()["id"], "conversation": conversation["id"], "document": document.json()["id"]}


def assert_state(server: Server, ids: dict[str, str]) -> None:
    with client(server) as http:
        provider = http.get(f"/v1/providers/{ids['provider']}")
        assert provider.status_code == 200, provider.text
        assert provider.json()["api_key_set"] is True  # the secret in Secrets Manager came back too
        assert http.get(f"/v1/conversations/{ids['conversation']}").json()["title"] == "kept"
        history = http.get(f"/v1/conversations/{ids['conversation']}/messages", params={"order": "asc"}).json()
        assert [(m["seq"], m["role"], m["content"]) for m in history["data"]] == [
            (1, "user", "remember me"),
            (2, "assistant", "remember me"),
        ]
        assert http.get(f"/v1/documents/{ids['document']}").status_code == 200
        # and new writes continue the stored sequence
        again = http.post(f"/v1/conversations/{ids['conversation']}/messages", json={"content": "and me"}).json()
        assert again["seq"] == 4


def test_state_and_the_printed_key_survive_ctrl_c_and_restart(tmp_path: Path) -> None:
    first = start_server("--data-dir", str(tmp_path), key=None)
    assert first.lines(f"data: {tmp_path}")[0].strip().endswith("(new; saved every second and on exit)")
    assert first.lines(f"rm -rf {tmp_path}")  # the banner says how to reset
    ids = write_state(first)
    first.process.send_signal(signal.SIGINT)
    assert "parley: stopped; state saved in" in first.wait_exit()
    assert first.process.returncode == 0

    second = start_server("--data-dir", str(tmp_path), key=None)
    try:
        assert second.key == first.key  # the same admin key, kept in the data folder
        assert "(restored;" in second.lines(f"data: {tmp_path}")[0]
        assert "kept (openai)" in second.lines("model providers:")[0]
        assert_state(second, ids)
    finally:
        second.process.send_signal(signal.SIGINT)
        second.wait_exit()


def test_kill_9_keeps_every_write_older_than_a_second(tmp_path: Path) -> None:
    first = start_server("--data-dir", str(tmp_path))
    ids = write_state(first)
    time.sleep(1.5)
    first.process.send_signal(signal.SIGKILL)
    first.wait_exit()
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written snapshot is left where it could be read
    second = start_server("--data-dir", str(tmp_path))
    try:
        assert_state(second, ids)
    finally:
        second.process.send_signal(signal.SIGINT)
        second.wait_exit()


def test_a_folder_written_by_an_incompatible_version_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "VERSION.json").write_text(json.dumps({"format": 0, "moto": "4.2"}))
    (tmp_path / "state.pickle").write_bytes(b"not ours")
    result = run_module(
        "parley.runtime.local",
        *("--port", "0", "--data-dir", str(tmp_path)),
        env={**os.environ, "PARLEY_LOCAL_API_KEY": "prl_x_0123456789"},
    )
    assert result.returncode == 2
    assert "cannot use the data folder" in result.stderr
    assert "'format': 0" in result.stderr
    assert f"rm -rf {tmp_path}" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "state.pickle").read_bytes() == b"not ours"  # nothing was touched
