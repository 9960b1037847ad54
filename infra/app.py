"""Entry point of the CDK app (cdk.json: ".venv/bin/python infra/app.py", the project's virtualenv, where
aws_cdk is installed; also `python -m infra.app`).

Run as a script, Python puts infra/ first on sys.path, where the package infra/constructs would
shadow the `constructs` library that aws_cdk imports. So, before anything imports aws_cdk, the
repository root takes infra/'s place and the app runs exactly as `python -m infra.app` would. That
one line is the only path adjustment; everything else imports `infra.*` normally.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    if not __package__:
        sys.path[0] = str(Path(__file__).resolve().parents[1])

    from infra.application import main

    main()
