"""The `parley` command-line client of the Parley API.

    parley [--api-url URL] [--api-key KEY] [--json] [--timeout S] <resource> <command> ...

Each resource is a module with `register(commands)` (see parley.cli.commands), listed in
RESOURCES. main() takes its environment, streams and HTTP transport as arguments, so tests
run it against httpx.MockTransport.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Mapping
from contextlib import redirect_stderr, redirect_stdout
from types import ModuleType
from typing import TextIO

import httpx

from parley import __version__
from parley.cli import chats
from parley.cli.client import DEFAULT_API_URL, CliError, ParleyClient
from parley.cli.commands import Commands, Context, add_global_options
from parley.cli.output import Output

RESOURCES: tuple[ModuleType, ...] = (chats,)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley",
        description="Command-line client of the Parley conversation API.",
        epilog=(
            "The API key comes from --api-key or $PARLEY_API_KEY, the base URL from --api-url or\n"
            f"$PARLEY_API_URL (default {DEFAULT_API_URL}). Global options may also follow the command.\n"
            "Run `parley <resource> --help` for a resource's commands."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"parley {__version__}")
    add_global_options(parser, suppress=False)
    subparsers = parser.add_subparsers(title="resources", metavar="<resource>", dest="resource", required=True)
    commands = Commands(subparsers)
    for resource in RESOURCES:
        resource.register(commands)
    return parser


def _valid_key(key: str) -> bool:
    """A key that fits in an HTTP header (so httpx never raises with it in the message)."""
    return key.isascii() and key.isprintable() and not any(char.isspace() for char in key)


def main(
    argv: list[str] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one command; returns the exit code (0 ok, 1 failed, 2 usage or configuration error)."""
    env = os.environ if env is None else env
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr

    parser = build_parser()
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE

    api_key: str = args.api_key or env.get("PARLEY_API_KEY") or ""
    out = Output(stdout, stderr, json_mode=args.json, secrets=[api_key] if api_key else [])
    if not api_key:
        out.error("no API key: pass --api-key or set PARLEY_API_KEY")
        return EXIT_USAGE
    if not _valid_key(api_key):
        out.error("the API key has characters an HTTP header cannot carry (spaces, newlines or non-ASCII)")
        return EXIT_USAGE
    api_url: str = args.api_url or env.get("PARLEY_API_URL") or DEFAULT_API_URL
    api_url = api_url.rstrip("/").removesuffix("/v1")  # the client adds /v1/... itself
    if not api_url.startswith(("http://", "https://")):
        out.error(f"--api-url must start with http:// or https://, got {api_url!r}")
        return EXIT_USAGE

    try:
        with ParleyClient(api_url, api_key, timeout=args.timeout, transport=transport) as client:
            code: int = args.handler(args, Context(client=client, out=out))
            return code
    except CliError as exc:
        out.error(exc.describe())
        return EXIT_FAILURE
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - an unexpected bug: show it, with the key masked
        out.note(out.redact("".join(traceback.format_exception(exc)).rstrip()))
        out.error(f"unexpected {type(exc).__name__}; this is a bug in the parley CLI")
        return EXIT_FAILURE
