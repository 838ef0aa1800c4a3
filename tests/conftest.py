"""Shared fixtures: a fresh home per test, the Sheratan app on each persistence module, and a
real PostgreSQL server with a fresh database per test (tests/postgres_helpers.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from postgres_helpers import fresh_database, library_env, server

from sheratan.app import Sheratan
from sheratan.home import init_home
from sheratan.progress import EVERY_ENV

PERSISTENCE_MODULES = ("sheratan.store", "eventsourcing.popo", "eventsourcing.postgres")
#: The stores a home can live on: the acceptance tests that take ``any_home`` run on each.
STORES = ("embedded", "postgres")


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
    return init_pg_home(tmp_path / "pg-home", postgres_dsn)


def init_pg_home(path: Path, dsn: str) -> Path:
    """``init --store postgres --dsn DSN`` at ``path``, as a user makes one."""
    from cli_helpers import as_json

    assert as_json(path, "init", "--store", "postgres", "--dsn", dsn)["created"]
    return path


def home_maker(
    store: str, request: pytest.FixtureRequest, databases: ExitStack
) -> Callable[[Path], Path]:
    """A function that initialises a home at a path on ``store``: embedded, or PostgreSQL on
    a fresh database of the session's server (``databases`` drops it)."""

    def init(path: Path) -> Path:
        if store == "embedded":
            init_home(path)
            return path
        server = request.getfixturevalue("postgres_server")
        return init_pg_home(path, databases.enter_context(fresh_database(server)))

    return init


@pytest.fixture(params=STORES)
def make_home(request: pytest.FixtureRequest) -> Iterator[Callable[[Path], Path]]:
    """Makes fresh homes on each store in turn, embedded and PostgreSQL: the store, decision,
    replay and accounts acceptance tests that take it (or ``any_home``) run on both,
    unchanged (issue 13)."""
    with ExitStack() as databases:
        yield home_maker(request.param, request, databases)


@pytest.fixture(scope="module", params=STORES)
def make_module_home(request: pytest.FixtureRequest) -> Iterator[Callable[[Path], Path]]:
    """``make_home`` for the logs a module builds once and its tests share."""
    with ExitStack() as databases:
        yield home_maker(request.param, request, databases)


@pytest.fixture
def any_home(make_home: Callable[[Path], Path], tmp_path: Path) -> Path:
    """A fresh home on each store in turn (``make_home``)."""
    return make_home(tmp_path / "home")
