from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.search.local import LocalSearchEngine
from parley.search.opensearch import OpenSearchEngine
from tests.unit.search.fake_opensearch import FakeOpenSearch, client_for

DIM = 4


@pytest.fixture
def fake() -> Iterator[FakeOpenSearch]:
    server = FakeOpenSearch().start()
    yield server
    server.stop()


@pytest.fixture
def opensearch(fake: FakeOpenSearch) -> OpenSearchEngine:
    return OpenSearchEngine("http://127.0.0.1", "us-east-1", index_prefix="t", dimension=DIM, client=client_for(fake))


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalSearchEngine]:
    engine = LocalSearchEngine(tmp_path / "search.sqlite3")
    yield engine
    engine.close()


@pytest.fixture(params=["local", "opensearch"])
def engine(request: pytest.FixtureRequest) -> object:
    return request.getfixturevalue(request.param)
