"""The import contract: layers point down (DESIGN.md section 2).

    functions/*/handler.py -> parley.api -> parley.services -> parley.storage | providers -> parley.domain

`parley.settings`, `parley.aws` and `parley.metrics` (lazy settings and clients) sit just above
the domain, for every layer; `parley.runtime`, `parley.cli` and `parley.admin` are entry points
on top. Every import in the core package and the handlers is read from the source (top-level
and function-level alike), so an upward import fails `make test`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "layers" / "core" / "parley"

# rank of each part of the package: a module may import its own part and parts of lower rank
RANKS = {
    "domain": 0,
    "settings": 1,
    "aws": 1,
    "metrics": 1,
    "egress": 1,
    "iterators": 1,
    "storage": 2,
    "providers": 2,
    "search": 2,
    "events": 2,
    "services": 3,
    "api": 4,
    "runtime": 5,
    "cli": 5,
    "admin": 5,
    "handler": 6,
}
# Side by side at rank 2, adapters and repositories do not import each other.
SIDEWAYS_FORBIDDEN = {"storage", "providers", "search", "events"}


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if parts[0] == "parley" and len(parts) > 1 and parts[1] != "__init__" else ""


def imports_of(path: Path, package: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return [(line, name) for line, name in found if name.startswith("parley")]


def modules() -> list[tuple[Path, str, str]]:
    """(path, its package, its part) for every module of the core and every handler."""
    found = []
    for path in sorted(CORE.rglob("*.py")):
        relative = path.relative_to(CORE.parent).with_suffix("")
        name = ".".join(relative.parts)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found.append((path, package, part_of(name)))
    found += [(path, "handler", "handler") for path in sorted((ROOT / "functions").glob("*/handler.py"))]
    return found


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def violations(path: Path, package: str, part: str) -> list[str]:
    wrong = []
    for line, name in imports_of(path, package):
        target = part_of(name)
        if target == "" or target == part or part == "":
            continue
        if target not in RANKS:
            wrong.append(f"{shown(path)}:{line} imports {name}: a part the contract does not know")
        elif RANKS[target] > RANKS[part] or (part in SIDEWAYS_FORBIDDEN and target in SIDEWAYS_FORBIDDEN):
            wrong.append(f"{shown(path)}:{line}: {part} imports {name} ({target} is not below {part})")
    return wrong


def test_every_part_of_the_package_has_a_rank() -> None:
    parts = {part for _, _, part in modules() if part}
    assert parts <= set(RANKS), parts - set(RANKS)


def test_layers_point_down() -> None:
    wrong = [v for path, package, part in modules() for v in violations(path, package, part)]
    assert wrong == [], "upward imports:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("part", "source", "upward"),
    [
        ("domain", "from parley.services import messages\n", True),
        ("services", "from parley.api.app import make_app\n", True),
        ("storage", "import parley.providers.registry\n", True),
        ("services", "def late():\n    from parley.api import sse\n", True),
        ("api", "from parley.services import messages\n", False),
        ("storage", "from parley.domain.errors import NotFound\n", False),
    ],
)
def test_the_contract_catches_a_deliberately_upward_import(
    tmp_path: Path, part: str, source: str, upward: bool
) -> None:
    module = tmp_path / "probe.py"
    module.write_text(source)
    found = violations(module, f"parley.{part}", part)
    assert bool(found) is upward, found
