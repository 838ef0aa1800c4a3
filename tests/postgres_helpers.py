"""A real PostgreSQL server for the tests, and a fresh database per test.

The server is ``$SHERATAN_TEST_POSTGRES_DSN`` (``.ci/run`` starts one with
``scripts/postgres-local.sh``); without it, the same script starts one for this test session
when PostgreSQL's binaries are installed; else the tests that need one skip and say why.
Nothing here is a stand-in: every test talks to the server.

Not a test module (pytest collects only ``test_*.py``); conftest.py and the tests import it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from sheratan.postgres import scratch
from sheratan.postgres.scratch import dsn_of
from sheratan.postgres.target import parse_dsn

__all__ = ["dsn_of", "fresh_database", "library_env", "server"]

DSN_VARIABLE = "SHERATAN_TEST_POSTGRES_DSN"


@contextmanager
def server() -> Iterator[str]:
    """The DSN of a PostgreSQL server for this session (started here if need be)."""
    given = os.environ.get(DSN_VARIABLE)
    if given:
        yield given
        return
    with ExitStack() as stack:
        try:
            dsn = stack.enter_context(scratch.scratch_server())
        except scratch.NoServerError as error:
            pytest.skip(f"no PostgreSQL: set {DSN_VARIABLE}, or {error}")
        yield dsn


@contextmanager
def fresh_database(dsn: str) -> Iterator[str]:
    """A new, empty database on the server of ``dsn``; dropped after (connections too)."""
    with scratch.fresh_database(dsn, prefix="sheratan_test") as fresh:
        yield fresh


def library_env(dsn: str) -> dict[str, str]:
    """The eventsourcing library's environment for the database of ``dsn``."""
    target, password = parse_dsn(dsn)
    return target.env(password)
