"""Processes of several "hosts" on one PostgreSQL database, and what the database says.

A host is a home folder initialised on the database (``init --store postgres``): each
process runs with a folder of its own, as it would on a machine of its own. The log is read
back with SQL (cheap enough to poll while thousands of jobs run) or as ledger lines
(``Home.log``), never from a JSONL file (a PostgreSQL home has none).
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from cli_helpers import as_json
from process_helpers import start_cli, wait_until
from worker_helpers import BEAT

from sheratan.home import Home

#: The events table of the application (named from the app's name by the library).
EVENTS = "sheratan_events"


def host(root: Path, name: str, dsn: str) -> Path:
    """A home folder ``root/name`` initialised on the database of ``dsn``."""
    path = root / name
    assert as_json(path, "init", "--store", "postgres", "--dsn", dsn)["created"]
    return path


def sql(dsn: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of one statement on the database of ``dsn`` (a connection of its own)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(statement, params).fetchall()  # type: ignore[arg-type]


def streams_with(dsn: str, topic: str) -> int:
    """How many streams hold an event of ``topic`` (how many jobs completed, say)."""
    query = f"SELECT count(DISTINCT originator_id) FROM {EVENTS} WHERE topic = %s"
    return int(sql(dsn, query, topic)[0][0])


def topic_counts(dsn: str) -> Counter[str]:
    """How many events of each topic the log holds."""
    return Counter(dict(sql(dsn, f"SELECT topic, count(*) FROM {EVENTS} GROUP BY topic")))


def events_with(dsn: str, topic: str, field: str, value: str) -> int:
    """How many events of ``topic`` have ``data[field] == value``."""
    query = (
        f"SELECT count(*) FROM {EVENTS} WHERE topic = %s "
        "AND convert_from(state, 'UTF8')::jsonb ->> %s = %s"
    )
    return int(sql(dsn, query, topic, field, value)[0][0])


def log_lines(home: Path) -> list[dict[str, Any]]:
    """Every event of the log, as the ledger's lines (pos, stream, ver, topic, data)."""
    opened = Home.open(home)
    try:
        log = opened.log
        return [msgspec.json.decode(line) for _, line in log.lines(1, log.last_position())]
    finally:
        opened.close()


def wait_progressing(
    check: Callable[[], bool], count: Callable[[], int], what: str, *alive: Any
) -> None:
    """Poll ``check`` until it is true, for as long as ``count`` keeps rising: a run of
    thousands of jobs may take longer than WAIT_S, but never WAIT_S without progress."""
    while not check():
        seen = count()
        wait_until(lambda s=seen: check() or count() > s, f"{what} (stuck at {seen})", *alive)


def start_worker(
    home: Path, dsn: str, workspace: Path, worker: str, *more: str
) -> subprocess.Popen[str]:
    """``worker run`` of ``worker`` (noop, patch_apply) from ``home``, once it registered."""
    before = events_with(dsn, "worker.registered", "worker_id", worker)
    process = start_cli(
        home,
        "worker",
        "run",
        worker,
        "--kinds",
        "noop,patch_apply",
        "--workspace",
        str(workspace),
        "--heartbeat",
        BEAT,
        *more,
    )
    wait_until(
        lambda: events_with(dsn, "worker.registered", "worker_id", worker) > before,
        f"{worker} to register",
        process,
    )
    return process
