"""How resources plug into the CLI.

A resource module (parley.cli.chats, ...) has `register(commands: Commands) -> None`, which
adds a group and its commands:

    group = commands.group("chats", help="...")
    get = group.command("get", get_chat, help="...")
    get.add_argument("chat_id")

A handler takes the parsed arguments and a Context (the API client and the Output) and
returns the exit code. Every parser also accepts the global options, so `parley chats list
--json` works as well as `parley --json chats list`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from parley.cli.client import DEFAULT_API_URL, DEFAULT_TIMEOUT, ParleyClient
from parley.cli.output import Output


@dataclass(frozen=True)
class Context:
    client: ParleyClient
    out: Output


Handler = Callable[[argparse.Namespace, Context], int]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes. With suppress, an option left out does not override
    the value given before the subcommand."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    options = parser.add_argument_group("global options")
    options.add_argument(
        "--api-url",
        metavar="URL",
        default=default(None),
        help=f"the API's base URL (default: $PARLEY_API_URL, else {DEFAULT_API_URL})",
    )
    options.add_argument(
        "--api-key", metavar="KEY", default=default(None), help="the API key (default: $PARLEY_API_KEY)"
    )
    options.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the API's JSON (one document per command) instead of tables",
    )
    options.add_argument(
        "--timeout",
        type=positive_float,
        metavar="SECONDS",
        default=default(DEFAULT_TIMEOUT),
        help=f"network timeout in seconds (default: {DEFAULT_TIMEOUT:g})",
    )


def _common() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    add_global_options(parser, suppress=True)
    return parser


class Group:
    def __init__(self, parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
        self.parser = parser
        self._common = common
        self._commands = parser.add_subparsers(title="commands", metavar="<command>", dest="command", required=True)

    def command(
        self,
        name: str,
        handler: Handler,
        *,
        help: str,  # noqa: A002 - argparse's own word
        description: str | None = None,
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self._commands.add_parser(
            name,
            help=help,
            description=description or help[:1].upper() + help[1:] + ".",
            parents=[self._common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(handler=handler)
        return parser


class Commands:
    def __init__(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self._subparsers = subparsers
        self._common = _common()

    def group(
        self,
        name: str,
        *,
        help: str,  # noqa: A002 - argparse's own word
        description: str | None = None,
    ) -> Group:
        parser: argparse.ArgumentParser = self._subparsers.add_parser(
            name,
            help=help,
            description=description or help[:1].upper() + help[1:] + ".",
            parents=[self._common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        return Group(parser, self._common)
