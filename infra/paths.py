"""Where the app finds its inputs, relative to this file (never to the working directory)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CDK_JSON = REPO_ROOT / "cdk.json"
PYPROJECT = REPO_ROOT / "pyproject.toml"
ROUTES_FILE = REPO_ROOT / "functions" / "routes.py"
CORE_SOURCE = REPO_ROOT / "layers" / "core"
DEFAULT_LAYERS_DIR = REPO_ROOT / "build" / "layers"
