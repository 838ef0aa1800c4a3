"""The exporter on a PostgreSQL home: the JSONL ledger written from the notification log,
checked against the database on every pass, brought up to date before why, replay, audit
and sql, and kept current by ``export --follow``. Real server, real CLI processes."""

from __future__ import annotations

import signal
from pathlib import Path

import psycopg
import pytest
from process_helpers import cli_json, cli_ok, run_cli, start_cli, stop, wait_until
from store_helpers import all_lines, decoded_lines

from sheratan.home import Home
from sheratan.postgres.exporter import Source, background_export, lag_seconds, measure_lag
from sheratan.store.factory import open_ledger


def with_jobs(home: Path, count: int = 3) -> str:
    mission = cli_json(home, "mission", "create", "m")["id"]
    task: str = cli_json(home, "task", "create", mission, "t")["id"]
    for n in range(count):
        cli_ok(home, "job", "create", "noop", "--task", task, "--payload", f'{{"n":{n}}}')
    return task


def database_last(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        found = conn.execute("SELECT max(notification_id) FROM sheratan_events").fetchone()
        return int(found[0]) if found else 0


def test_export_writes_the_ledger_and_says_how_far_it_got(pg_home: Path, postgres_dsn: str) -> None:
    with_jobs(pg_home)
    last = database_last(postgres_dsn)
    lag = cli_json(pg_home, "export")
    assert lag == {"exported": last, "database": last}
    assert len(all_lines(pg_home)) == last
    assert cli_json(pg_home, "export") == lag  # nothing new: nothing written
    assert len(all_lines(pg_home)) == last
    lines = decoded_lines(pg_home)
    assert [line["pos"] for line in lines] == list(range(1, last + 1))
    # `end`: the last id of the transaction (job.created and job.queued commit together)
    created = [line for line in lines if line["topic"] == "job.created"]
    assert created and all(line["end"] == line["pos"] + 1 for line in created)
    assert all("trk" not in line for line in lines)


@pytest.mark.parametrize(
    "command",
    [
        ("why", "stats"),
        ("sql", "SELECT count(*) AS n FROM events"),
        ("audit", "verify"),
        ("audit", "report"),
        ("replay", "--exact"),
    ],
)
def test_reading_commands_bring_the_export_up_first(
    pg_home: Path, postgres_dsn: str, command: tuple[str, ...]
) -> None:
    with_jobs(pg_home)
    last = database_last(postgres_dsn)
    done = cli_ok(pg_home, *command)
    assert f"export: exported to {last}, database at {last}" in done.stderr
    assert len(all_lines(pg_home)) == last


def test_sql_and_audit_read_the_exported_log(pg_home: Path, postgres_dsn: str) -> None:
    with_jobs(pg_home, 2)
    last = database_last(postgres_dsn)
    rows = cli_json(pg_home, "sql", "SELECT count(*) AS n FROM events WHERE topic = 'job.created'")
    assert rows == [{"n": 2}]
    verified = cli_json(pg_home, "audit", "verify")
    assert verified["ok"] and verified["verified"] == last


def _sql(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(statement)


def refused_export(home: Path, needle: str) -> str:
    done = run_cli(home, "export")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert needle in lines[0], lines[0]
    return lines[0]


def test_a_row_changed_in_the_database_stops_the_export(pg_home: Path, postgres_dsn: str) -> None:
    with_jobs(pg_home)
    cli_ok(pg_home, "export")
    before = all_lines(pg_home)
    last = database_last(postgres_dsn)
    _sql(
        postgres_dsn,
        'UPDATE sheratan_events SET state = convert_to(\'{"timestamp":"2020-01-01T00:00:00Z"}\','
        f" 'UTF8') WHERE notification_id = {last}",
    )
    line = refused_export(pg_home, f"at position {last}: its row was changed")
    assert "no longer matches the export" in line
    with_jobs(pg_home, 1)  # new events do not get past it either
    refused_export(pg_home, "its row was changed")
    assert all_lines(pg_home) == before
    done = run_cli(pg_home, "why", "stats")
    assert done.returncode == 1 and "its row was changed" in done.stderr


def test_a_row_deleted_in_the_database_stops_the_export(pg_home: Path, postgres_dsn: str) -> None:
    with_jobs(pg_home)
    cli_ok(pg_home, "export")
    _sql(postgres_dsn, "DELETE FROM sheratan_events WHERE notification_id = 2")
    refused_export(pg_home, "a row was deleted")


def test_export_follow_keeps_up_and_stops_on_sigterm(pg_home: Path, postgres_dsn: str) -> None:
    task = with_jobs(pg_home, 1)
    follower = start_cli(pg_home, "export", "--follow")
    try:
        cli_ok(pg_home, "job", "create", "noop", "--task", task)
        last = database_last(postgres_dsn)
        wait_until(lambda: len(all_lines(pg_home)) == last, "the export reaches it", follower)
    finally:
        code, out, err = stop(follower, signal.SIGTERM)
    assert code == 0, err
    assert f"export: exported to {last}, database at {last} (stopped)" in out
    assert "(0 behind)" in err


def test_the_lag_is_measured_beside_a_follower(pg_home: Path, postgres_dsn: str) -> None:
    """``measure_lag`` samples (time, exported, database) while ``background_export``
    follows; the bench turns them into seconds with ``lag_seconds`` (no timing is asserted
    here)."""
    task = with_jobs(pg_home, 1)
    opened = Home.open(pg_home)
    source, ledger = Source(opened.app.recorder), open_ledger(pg_home)
    try:
        with opened.waker() as waker, background_export(source, ledger, waker):
            cli_ok(pg_home, "job", "create", "noop", "--task", task)
            last = database_last(postgres_dsn)
            wait_until(lambda: ledger.last_position() == last, "the export reaches it")
            samples = measure_lag(source, ledger, 0.3)
    finally:
        opened.close()
    assert samples and all(exported == database == last for _, exported, database in samples)
    assert lag_seconds(samples) == 0.0


def test_export_needs_to_on_an_embedded_home(home: Path) -> None:
    done = run_cli(home, "export")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: an embedded home is its own JSONL log: export --to DIR copies it"
    )


def test_lag_seconds_is_the_longest_wait_for_a_position() -> None:
    samples = [(0.0, 5, 5), (0.1, 5, 9), (0.2, 7, 9), (0.5, 9, 12), (0.6, 12, 12)]
    assert lag_seconds(samples) == pytest.approx(
        0.4
    )  # position 9: in the database at 0.1, exported at 0.5
    assert lag_seconds([(0.0, 3, 3), (1.0, 3, 3)]) == 0.0
    assert lag_seconds([(0.0, 1, 4), (2.0, 2, 4)]) == 2.0  # never reached: until the last
    assert lag_seconds([]) == 0.0


def test_export_check_finds_a_row_changed_anywhere(pg_home: Path, postgres_dsn: str) -> None:
    """The pass checks the head; ``export --check`` renders every exported line again."""
    with_jobs(pg_home)
    cli_ok(pg_home, "export")
    done = cli_ok(pg_home, "export", "--check")
    last = database_last(postgres_dsn)
    assert f"export: {last} positions match the database" in done.stderr
    _sql(postgres_dsn, "UPDATE sheratan_events SET topic = 'job.renamed' WHERE notification_id = 3")
    done = run_cli(pg_home, "export", "--check")
    assert done.returncode == 1
    assert done.stderr.strip().endswith("at position 3: its row differs"), done.stderr
