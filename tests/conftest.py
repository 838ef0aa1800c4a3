"""Shared fixtures: a fresh home per test, and the Sheratan app on each persistence module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sheratan.app import Sheratan
from sheratan.home import init_home

PERSISTENCE_MODULES = ("sheratan.store", "eventsourcing.popo")


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
