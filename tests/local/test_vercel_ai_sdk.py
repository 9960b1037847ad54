"""Issue 17, acceptance: the Vercel AI SDK's default provider, `createOpenAI({baseURL, apiKey})(model)`
(which speaks the Responses API), with `generateText` and `streamText` against the local server,
in Node's test runner (tests/node/vercel_ai_sdk.test.mjs).

Node is the repository's (`make node`: node@22 from the npm registry under .tools), else the
machine's; `ai` and `@ai-sdk/openai`, pinned in tests/node/package.json, are installed from the
npm registry into .tools/node-clients on first use (`make node-clients` does the same), then
found there offline. The test is skipped, saying why, only when they cannot be installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.local.conftest import Server

pytestmark = pytest.mark.local

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tests" / "node" / "package.json"
SCRIPT = ROOT / "tests" / "node" / "vercel_ai_sdk.test.mjs"
CLIENTS = ROOT / ".tools" / "node-clients"
NODE_BIN = ROOT / ".tools" / "node" / "node_modules" / "node" / "bin"


def _node() -> str | None:
    local = NODE_BIN / "node"
    return str(local) if local.exists() else shutil.which("node")


def _installed() -> bool:
    placed = CLIENTS / "package.json"
    return (
        placed.exists()
        and placed.read_text() == SPEC.read_text()
        and all((CLIENTS / "node_modules" / name / "package.json").exists() for name in ("ai", "@ai-sdk/openai"))
    )


def ensure_clients() -> str:
    """The node binary, with the pinned clients installed (installing them if needed)."""
    node = _node()
    npm = shutil.which("npm")
    if node is None:
        pytest.skip("no Node: run `make node` (node@22 from the npm registry)")
    if _installed():
        return node
    if npm is None:
        pytest.skip("ai and @ai-sdk/openai are not installed and there is no npm to install them")
    CLIENTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SPEC, CLIENTS / "package.json")
    env = {**os.environ, "PATH": os.pathsep.join([str(NODE_BIN), os.environ.get("PATH", "")])}
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--no-package-lock"],
        cwd=CLIENTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0 or not _installed():
        (CLIENTS / "package.json").unlink(missing_ok=True)  # tried again next time
        pytest.skip(f"npm could not install ai and @ai-sdk/openai: {done.stderr.strip()[-500:]}")
    return node


def test_the_vercel_ai_sdk_default_provider_generates_and_streams_text(server: Server) -> None:
    node = ensure_clients()
    env = {
        **os.environ,
        "PARLEY_BASE_URL": f"{server.url}/openai/v1",
        "PARLEY_API_KEY": server.key,
        "NODE_CLIENTS_DIR": str(CLIENTS),
    }
    run = subprocess.run(
        [node, "--test", "--test-reporter=spec", str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pass 3" in run.stdout and "fail 0" in run.stdout, run.stdout
