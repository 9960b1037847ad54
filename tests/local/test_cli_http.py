"""The `parley` CLI against the local server."""

from __future__ import annotations

import io
import json

import httpx
import pytest

from parley.cli import main
from tests.local.conftest import Server

pytestmark = pytest.mark.local


def run(server: Server, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {"PARLEY_API_URL": server.url, "PARLEY_API_KEY": server.key}
    code = main(list(argv), env=env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_creates_lists_and_completes_a_chat(server: Server) -> None:
    provider = httpx.post(
        f"{server.url}/v1/providers",
        headers={"Authorization": f"Bearer {server.key}"},
        json={"type": "echo", "name": "cli-echo", "default_model": "echo"},
    ).json()["id"]
    code, out, _ = run(
        server,
        "--json",
        "chats",
        "create",
        "--ai-provider-id",
        provider,
        "--name",
        "CLI chat",
        "--system-message",
        "Be brief.",
    )
    assert code == 0
    chat = json.loads(out)
    code, out, _ = run(server, "--json", "chats", "list", "--all")
    assert chat["id"] in [c["id"] for c in json.loads(out)["data"]]
    code, out, err = run(server, "chats", "complete", chat["id"], "--message", "streamed to the terminal")
    assert (code, out.strip()) == (0, "streamed to the terminal")
    assert server.key not in out + err
    code, _, err = run(server, "chats", "get", "cht_01JZ00000000000000000000AA")
    assert code == 1
    assert "chat_not_found" in err
    assert run(server, "--json", "chats", "delete", chat["id"])[0] == 0
