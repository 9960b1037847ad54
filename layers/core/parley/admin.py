"""parley-admin: operator commands that run with the operator's AWS credentials, outside the API.

    parley-admin create-key --org acme --project support [--permission '*'] [--name ci]

Creating the first API key of a fresh deployment is the reason this exists: the API's own
key routes need a key. The secret is printed once, on stdout, and stored only as a hash.
The keys table comes from --keys-table or PARLEY_TABLE_KEYS (the stack output KeysTableName).
"""

from __future__ import annotations

import argparse
import json
import sys

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
    create.add_argument("--json", action="store_true", help="print the key as JSON")
    args = parser.parse_args(argv)

    settings = get_settings()
    if args.keys_table:
        set_settings(settings.with_(tables={**settings.tables, "keys": args.keys_table}))
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


if __name__ == "__main__":
    sys.exit(main())
