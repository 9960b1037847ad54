"""parley-admin: operator commands that run with the operator's AWS credentials, outside the API.

    parley-admin create-key --org acme --project support [--permission '*'] [--name ci]

Creating the first API key of a fresh deployment is the reason this exists: the API's own
key routes need a key. The secret is printed once, on stdout, and stored only as a hash.
The keys table comes from --keys-table or PARLEY_TABLE_KEYS (the stack output KeysTableName).

    parley-admin create-key --local --org acme --project b

--local issues the key on the running local server (`make serve`) instead: it reads where that
server's emulation listens from its data folder (.parley/server.json, or $PARLEY_DATA_DIR;
--server-file for an --ephemeral server, whose banner prints the path) and writes there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from parley.services.keys import issue_key
from parley.settings import get_settings, set_settings
from parley.storage.keys import KeyRepository


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="parley-admin", description="Parley operator commands.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-key", help="issue an API key (the secret is shown once)")
    create.add_argument("--org", required=True)
    create.add_argument("--project", required=True)
    create.add_argument(
        "--permission",
        action="append",
        dest="permissions",
        help="<resource>:<Action>, <resource>:* or * (repeatable; default *)",
    )
    create.add_argument("--name", default="")
    create.add_argument("--keys-table", help="default: $PARLEY_TABLE_KEYS")
    create.add_argument("--chats-table", help="where keys are listed and projects kept; default: $PARLEY_TABLE_CHATS")
    create.add_argument("--json", action="store_true", help="print the key as JSON")
    create.add_argument("--local", action="store_true", help="issue the key on the running local server")
    create.add_argument("--server-file", type=Path, help="with --local: default $PARLEY_DATA_DIR/server.json")
    args = parser.parse_args(argv)

    if args.local:
        error = _use_local_server(args.server_file)
        if error:
            print(f"parley-admin: {error}", file=sys.stderr)
            return 2
    settings = get_settings()
    tables = {**settings.tables}
    if args.keys_table:
        tables["keys"] = args.keys_table
    if args.chats_table:
        tables["chats"] = args.chats_table
    if tables != settings.tables:
        set_settings(settings.with_(tables=tables))
    issued = issue_key(
        args.org, args.project, tuple(args.permissions or ["*"]), name=args.name, repository=KeyRepository()
    )
    record = issued.record
    if args.json:
        print(
            json.dumps(
                {
                    "id": record.key_id,
                    "secret": issued.secret,
                    "org_id": record.org_id,
                    "project_id": record.project_id,
                    "permissions": list(record.permissions),
                }
            )
        )
    else:
        print(
            f"key {record.key_id} for {record.org_id}/{record.project_id} {list(record.permissions)}", file=sys.stderr
        )
        print(issued.secret)
    return 0


def _use_local_server(server_file: Path | None) -> str | None:
    """Point settings and clients at the running local server's emulation; an error text if none runs."""
    from parley.aws import set_clients  # noqa: PLC0415
    from parley.runtime.local import LOCAL_ENV, SERVER_FILE  # noqa: PLC0415

    path = server_file or Path(os.environ.get("PARLEY_DATA_DIR") or ".parley") / SERVER_FILE
    try:
        info = json.loads(path.read_text())
        endpoint = str(info["emulation_url"])
    except FileNotFoundError:
        return f"no local server is running ({path} does not exist): start it with `make serve`"
    except (ValueError, KeyError, TypeError) as exc:
        return f"{path} is not a local server's file ({exc})"
    if not endpoint.startswith("http://127.0.0.1:"):
        return f"{path} names {endpoint!r}, not a local emulation"
    if not _running(info.get("pid")):
        return f"the local server that wrote {path} is not running (it was stopped with kill -9?): start it again"
    os.environ.update(LOCAL_ENV)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    set_settings(None)
    set_clients(None)
    return None


def _running(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


if __name__ == "__main__":
    sys.exit(main())
