"""The process's search engine: chosen from the settings on first use, cached, injectable.

- `local` (SQLite FTS5 and numpy, parley.search.local): the default in local mode. Its file is
  `search_path` (PARLEY_SEARCH_PATH, which the local server sets for its worker processes to
  `<data dir>/search.sqlite3`, or a file in a temporary folder when it runs ephemeral); unset, a
  file in the system's temporary folder, so the tests and one-off scripts still work.
- `opensearch` (OpenSearch Serverless, parley.search.opensearch): the default outside local mode;
  it needs `search_endpoint` (PARLEY_SEARCH_ENDPOINT, set by CDK).
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from parley.search.base import SearchEngine
from parley.settings import Settings, get_settings

__all__ = ["LOCAL_FILE", "build_engine", "engine", "set_engine"]

LOCAL_FILE = "search.sqlite3"

_engine: SearchEngine | None = None
_lock = threading.Lock()


def build_engine(settings: Settings) -> SearchEngine:
    kind = settings.search_engine or ("local" if settings.local else "opensearch")
    if kind == "local":
        from parley.search.local import LocalSearchEngine  # noqa: PLC0415

        path = settings.search_path or str(Path(tempfile.gettempdir()) / f"parley-{LOCAL_FILE}")
        return LocalSearchEngine(path)
    if kind == "opensearch":
        if not settings.search_endpoint:
            raise ValueError("PARLEY_SEARCH_ENDPOINT must name the OpenSearch Serverless collection's endpoint")
        from parley.search.opensearch import OpenSearchEngine  # noqa: PLC0415

        return OpenSearchEngine(
            settings.search_endpoint,
            settings.search_region or settings.region,
            index_prefix=settings.search_index_prefix,
            dimension=settings.search_dimension,
        )
    raise ValueError(f"PARLEY_SEARCH_ENGINE must be local or opensearch, got {kind!r}")


def engine(settings: Settings | None = None) -> SearchEngine:
    """The process's engine, built from the settings the first time it is needed."""
    global _engine
    with _lock:
        if _engine is None:
            _engine = build_engine(settings or get_settings())
        return _engine


def set_engine(value: SearchEngine | None) -> None:
    """Inject an engine (tests); None makes the next call build one from the settings again."""
    global _engine
    with _lock:
        _engine = value
