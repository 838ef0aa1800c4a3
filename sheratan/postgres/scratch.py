"""Scratch PostgreSQL for work that needs a server for a while (``bench scale``): one started
with scripts/postgres-local.sh and stopped after, and fresh databases dropped after use.

A checkout's script does the starting (it finds the binaries, picks a spare port, runs the
server as ``postgres`` when we are root); without the script or the binaries there is no
server, and the caller says so in one line rather than fail.
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

from sheratan.postgres.target import PostgresTarget, _psycopg, parse_dsn

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres-local.sh"


class NoServerError(Exception):
    """No PostgreSQL server could be started here (the one-line reason)."""


@contextmanager
def scratch_server() -> Iterator[str]:
    """A server of its own for the block (its DSN); stopped and deleted after."""
    if not SCRIPT.exists():
        raise NoServerError(f"no {SCRIPT.name} to start PostgreSQL (not a checkout)")
    found = subprocess.run(["bash", str(SCRIPT), "bindir"], capture_output=True, check=False)
    if found.returncode != 0:
        msg = "PostgreSQL is not installed (scripts/postgres-local.sh install), and no --dsn"
        raise NoServerError(msg)
    folder = tempfile.mkdtemp(prefix="sheratan-pg-")  # in /tmp: the server's user reaches it
    env = {**os.environ, "SHERATAN_PG_DIR": folder}
    try:
        started = subprocess.run(
            ["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, check=False
        )
        if started.returncode != 0:
            reason = " ".join(started.stderr.split()[-30:])
            raise NoServerError(f"postgres-local.sh start failed: {reason}")
        yield started.stdout.strip()
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def fresh_database(dsn: str, prefix: str = "sheratan_scratch") -> Iterator[str]:
    """A new, empty database on the server of ``dsn`` (its DSN); dropped after, with any
    connection still open to it."""
    psycopg = _psycopg()
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    target, password = parse_dsn(dsn)
    try:
        yield dsn_of(PostgresTarget(target.host, target.port, name, target.user), password)
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dsn_of(target: PostgresTarget, password: str) -> str:
    """A target and its password as a DSN."""
    login = f"{target.user}:{password}" if password else target.user
    return f"postgresql://{login}@{target.host}:{target.port}/{target.dbname}"
