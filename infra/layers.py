"""Build the two Lambda layers, without Docker: `python -m infra.layers` (from the repository root).

    build/layers/core/  python/parley/ (the core package) and parley-stream (the streaming exec
                        wrapper, /opt/parley-stream on Lambda). Pure file copying: offline and fast.
    build/layers/deps/  python/ filled by pip for arm64 / CPython 3.13 wheels from pyproject.toml's
                        [project].dependencies. Needs PyPI; skipped while a stamp records the same
                        dependency list, so repeated `make synth` runs are fast.

The app (infra/app.py) reads both directories from its `layers_dir` context (default build/layers).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from infra.paths import CORE_SOURCE, DEFAULT_LAYERS_DIR, PYPROJECT

PACKAGE = "parley"
STREAM_WRAPPER = "parley-stream"
# The Lambda python3.13 runtime ships boto3 (with botocore and s3transfer, ~100 MB unzipped);
# pyproject.toml pins it for local use. Leaving it out keeps the layer small and cold starts short.
PROVIDED_BY_RUNTIME = frozenset({"boto3"})
# What pip installs for: Lambda arm64 (Graviton), CPython 3.13, wheels only (no local compilers).
PIP_PLATFORM = (
    "--platform",
    "manylinux2014_aarch64",
    "--implementation",
    "cp",
    "--python-version",
    "3.13",
    "--only-binary=:all:",
)
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


def build_core_layer(out: Path, source: Path = CORE_SOURCE) -> Path:
    """Lay out the core layer in `out` (replaced): python/parley/ and the executable parley-stream."""
    package, wrapper = source / PACKAGE, source / STREAM_WRAPPER
    for needed in (package, wrapper):
        if not needed.exists():
            raise FileNotFoundError(f"the core layer needs {needed}")
    if out.exists():
        shutil.rmtree(out)
    (out / "python").mkdir(parents=True)
    shutil.copytree(package, out / "python" / PACKAGE, ignore=_IGNORE)
    shutil.copyfile(wrapper, out / STREAM_WRAPPER)
    (out / STREAM_WRAPPER).chmod(0o755)
    return out


def requirement_name(requirement: str) -> str:
    """The normalized distribution name of a PEP 508 requirement ("Foo_Bar[x]>=1" -> "foo-bar")."""
    name = re.split(r"[\s\[\]<>=!~;@(]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """[project].dependencies, less what the Lambda runtime already provides."""
    dependencies: list[str] = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [d for d in dependencies if requirement_name(d) not in PROVIDED_BY_RUNTIME]


def _stamp_path(out: Path) -> Path:
    # Beside the layer, not inside it: the layer directory is the asset CDK zips.
    return out.parent / f".{out.name}.stamp.json"


def build_deps_layer(out: Path, requirements: Sequence[str] | None = None, *, python: str = sys.executable) -> bool:
    """pip-install the runtime dependencies into `out`/python. False if the stamp says it is current."""
    requirements = runtime_requirements() if requirements is None else list(requirements)
    stamp, recorded = _stamp_path(out), {"requirements": list(requirements), "pip": list(PIP_PLATFORM)}
    if (out / "python").is_dir() and stamp.is_file() and json.loads(stamp.read_text()) == recorded:
        return False
    stamp.unlink(missing_ok=True)
    if out.exists():
        shutil.rmtree(out)
    target = out / "python"
    target.mkdir(parents=True)
    command = [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        *PIP_PLATFORM,
        "--target",
        str(target),
        *requirements,
    ]
    subprocess.run(command, check=True)  # noqa: S603 (fixed argv, no shell)
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: nothing runs them on Lambda
    stamp.write_text(json.dumps(recorded, indent=2) + "\n")
    return True


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.layers", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_LAYERS_DIR, help="default: build/layers")
    parser.add_argument("--only", choices=("core", "deps"), help="build one layer only")
    args = parser.parse_args(argv)
    if args.only in (None, "core"):
        core = build_core_layer(args.out / "core")
        print(f"core layer: {core} ({tree_size(core) / 1e6:.1f} MB)")
    if args.only in (None, "deps"):
        deps = args.out / "deps"
        built = build_deps_layer(deps)
        state = "built" if built else "up to date"
        print(f"deps layer: {deps} ({tree_size(deps) / 1e6:.1f} MB, {state})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
