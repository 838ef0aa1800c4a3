"""A real PostgreSQL server for the tests, and a fresh database per test.

The server is ``$SHERATAN_TEST_POSTGRES_DSN`` (``.ci/run`` starts one with
``scripts/postgres-local.sh``); without it, the same script starts one for this test session
when PostgreSQL's binaries are installed; else the tests that need one skip and say why.
Nothing here is a stand-in: every test talks to the server.

Not a test module (pytest collects only ``test_*.py``); conftest.py and the tests import it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sheratan.postgres.target import PostgresTarget, parse_dsn

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "postgres-local.sh"
DSN_VARIABLE = "SHERATAN_TEST_POSTGRES_DSN"


@contextmanager
def server() -> Iterator[str]:
    """The DSN of a PostgreSQL server for this session (started here if need be)."""
    given = os.environ.get(DSN_VARIABLE)
    if given:
        yield given
        return
    if subprocess.run(["bash", str(SCRIPT), "bindir"], capture_output=True).returncode != 0:
        pytest.skip(
            f"no PostgreSQL: set {DSN_VARIABLE}, or install it "
            "(scripts/postgres-local.sh install) so the tests start one"
        )
    folder = tempfile.mkdtemp(prefix="sheratan-pg-")  # in /tmp: the server's user reaches it
    env = {**os.environ, "SHERATAN_PG_DIR": folder}
    try:
        started = subprocess.run(
            ["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, check=False
        )
        assert started.returncode == 0, f"postgres-local.sh start failed: {started.stderr}"
        yield started.stdout.strip()
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def fresh_database(dsn: str) -> Iterator[str]:
    """A new, empty database on the server of ``dsn``; dropped after (connections too)."""
    import psycopg

    name = f"sheratan_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    target, password = parse_dsn(dsn)
    fresh = PostgresTarget(target.host, target.port, name, target.user)
    try:
        yield dsn_of(fresh, password)
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dsn_of(target: PostgresTarget, password: str) -> str:
    """A target and its password as a DSN."""
    login = f"{target.user}:{password}" if password else target.user
    return f"postgresql://{login}@{target.host}:{target.port}/{target.dbname}"


def library_env(dsn: str) -> dict[str, str]:
    """The eventsourcing library's environment for the database of ``dsn``."""
    target, password = parse_dsn(dsn)
    return target.env(password)
