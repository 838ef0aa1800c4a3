"""Shared fixtures: a fresh home per test, the Sheratan app on each persistence module, and a
real PostgreSQL server with a fresh database per test (tests/postgres_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_helpers import fresh_database, library_env, server

from sheratan.app import Sheratan
from sheratan.home import init_home

PERSISTENCE_MODULES = ("sheratan.store", "eventsourcing.popo", "eventsourcing.postgres")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The DSN of this session's PostgreSQL server (skips when there is none)."""
    with server() as dsn:
        yield dsn


@pytest.fixture
def postgres_dsn(postgres_server: str) -> Iterator[str]:
    """The DSN of a fresh database, dropped after the test."""
    with fresh_database(postgres_server) as dsn:
        yield dsn


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    init_home(path)
    return path


@pytest.fixture(params=PERSISTENCE_MODULES)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sheratan]:
    env = {"PERSISTENCE_MODULE": request.param, "SHERATAN_HOME": str(tmp_path / "app-home")}
    if request.param == "eventsourcing.postgres":
        env = library_env(request.getfixturevalue("postgres_dsn"))
    application = Sheratan(env=env)
    yield application
    application.close()
