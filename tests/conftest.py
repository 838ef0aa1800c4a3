"""Shared fixtures: a fresh home per test, and the Sheratan app on each persistence module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sheratan.app import Sheratan
from sheratan.home import init_home
from sheratan.progress import EVERY_ENV

PERSISTENCE_MODULES = ("sheratan.store", "eventsourcing.popo")

# CliRunner mixes stderr into ``result.output``, which many tests parse as the answer: a
# progress line from a command that a loaded machine slowed past 10 s must not land in it.
# The progress tests (test_progress.py, test_bench_suite.py) set their own interval.
os.environ.setdefault(EVERY_ENV, "3600")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    init_home(path)
    return path


@pytest.fixture(params=PERSISTENCE_MODULES)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sheratan]:
    application = Sheratan(
        env={"PERSISTENCE_MODULE": request.param, "SHERATAN_HOME": str(tmp_path / "app-home")}
    )
    yield application
    application.close()
