"""Synthesizes the CDK app once per test session, and once across xdist workers too."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.infra.infra_synth import Synth, synthesize


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return Synth.load(synthesize(tmp_path_factory.mktemp("infra")))
    # Under xdist the first worker synthesizes into the session's shared temporary directory and
    # the others wait for it, instead of each paying for a synth.
    shared = tmp_path_factory.getbasetemp().parent / "parley-infra"
    with _locked(tmp_path_factory.getbasetemp().parent / "parley-infra.lock"):
        done = shared / "done"
        if not done.exists():
            synthesize(shared)
            done.touch()
    return Synth.load(shared / "cdk.out")
