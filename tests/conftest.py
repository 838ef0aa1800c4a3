"""Shared fixtures: a fresh home per test, the Sheratan app on each persistence module, and a
real PostgreSQL server with a fresh database per test (tests/postgres_helpers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_helpers import fresh_database, library_env, server

from sheratan.app import Sheratan
from sheratan.home import init_home
from sheratan.progress import EVERY_ENV

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
    env = {"PERSISTENCE_MODULE": request.param, "SHERATAN_HOME": str(tmp_path / "app-home")}
    if request.param == "eventsourcing.postgres":
        env = library_env(request.getfixturevalue("postgres_dsn"))
    application = Sheratan(env=env)
    yield application
    application.close()


@pytest.fixture
def pg_home(tmp_path: Path, postgres_dsn: str) -> Path:
    """A home initialised on a fresh PostgreSQL database (``init --store postgres``)."""
    from cli_helpers import as_json

    home = tmp_path / "pg-home"
    assert as_json(home, "init", "--store", "postgres", "--dsn", postgres_dsn)["created"]
    return home
