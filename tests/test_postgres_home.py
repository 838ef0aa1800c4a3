"""A home whose log lives in PostgreSQL, through the CLI: init, missions, tasks, jobs,
events tail; a bad DSN or a server that does not answer is one line and exit 2, and so is a
command that does not run there yet. Real server, fresh database per test
(tests/postgres_helpers.py)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import as_json, invoke, refused
from postgres_helpers import dsn_of

from sheratan.home import Home
from sheratan.postgres.support import SUPPORTED, NotOnPostgresError, check_supported
from sheratan.postgres.target import PASSWORD_FILE, PostgresTarget, parse_dsn


def test_missions_tasks_and_jobs_live_in_the_database(pg_home: Path) -> None:
    mission = as_json(pg_home, "mission", "create", "Nightly reports")["id"]
    task = as_json(pg_home, "task", "create", mission, "Collect inputs")["id"]
    job = as_json(pg_home, "job", "create", "noop", "--task", task, "--payload", '{"n": 1}')["id"]
    shown = as_json(pg_home, "job", "show", job)
    assert (shown["id"], shown["status"], shown["task_id"]) == (job, "queued", task)
    assert [j["id"] for j in as_json(pg_home, "job", "list", "--status", "queued")] == [job]
    assert [m["id"] for m in as_json(pg_home, "mission", "list")] == [mission]
    assert [t["id"] for t in as_json(pg_home, "task", "list")] == [task]
    # nothing of the log is in the home's folder: no segments, no checkpoints
    assert not (pg_home / "events").exists() and not (pg_home / "checkpoints").exists()


def test_events_tail_reads_the_notification_log(pg_home: Path) -> None:
    mission = as_json(pg_home, "mission", "create", "m")["id"]
    task = as_json(pg_home, "task", "create", mission, "t")["id"]
    job = as_json(pg_home, "job", "create", "noop", "--task", task)["id"]
    lines = [
        json.loads(line)
        for line in invoke(pg_home, "events", "tail", "-n", "3", "--json").stdout.splitlines()
    ]
    assert [(line["topic"], line["stream"], line["ver"]) for line in lines] == [
        ("task.created", task, 1),
        ("job.created", job, 1),
        ("job.queued", job, 2),
    ]
    positions = [line["pos"] for line in lines]
    assert positions == sorted(positions) and len(set(positions)) == 3
    assert lines[1]["data"]["kind"] == "noop" and lines[1]["ts"] == lines[1]["data"]["timestamp"]
    text = invoke(pg_home, "events", "tail", "-n", "1").stdout
    assert "job.queued" in text and job in text


def test_the_marker_keeps_no_password(pg_home: Path, postgres_dsn: str) -> None:
    target, password = parse_dsn(postgres_dsn)
    marker = (pg_home / "sheratan.json").read_text()
    assert json.loads(marker)["store"] == "postgres"
    assert json.loads(marker)["postgres"]["dbname"] == target.dbname
    if password:
        assert password not in marker
        secret = pg_home / PASSWORD_FILE
        assert secret.read_text() == password
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_a_second_home_on_the_same_database_shares_the_log(
    pg_home: Path, tmp_path: Path, postgres_dsn: str
) -> None:
    """Two homes (as on two machines) on one database: one history; init again is a no-op."""
    mission = as_json(pg_home, "mission", "create", "shared")["id"]
    other = tmp_path / "other-home"
    assert as_json(other, "init", "--store", "postgres", "--dsn", postgres_dsn)["created"]
    assert [m["id"] for m in as_json(other, "mission", "list")] == [mission]
    assert not as_json(pg_home, "init", "--store", "postgres", "--dsn", postgres_dsn)["created"]


def test_an_unreachable_server_is_one_line(tmp_path: Path, postgres_dsn: str) -> None:
    target, password = parse_dsn(postgres_dsn)
    down = dsn_of(PostgresTarget(target.host, 1, target.dbname, target.user), password)
    home = tmp_path / "down"
    line = refused(
        home, "init", "--store", "postgres", "--dsn", down, needle="cannot reach PostgreSQL"
    )
    assert f"{target.host}:1/" in line
    assert not password or password not in line
    assert not home.exists(), "a refused init leaves nothing behind"


def test_a_missing_database_or_wrong_password_is_one_line(
    tmp_path: Path, postgres_dsn: str
) -> None:
    target, password = parse_dsn(postgres_dsn)
    missing = dsn_of(PostgresTarget(target.host, target.port, "no_such_db", target.user), password)
    refused(
        tmp_path / "a",
        "init",
        "--store",
        "postgres",
        "--dsn",
        missing,
        needle='"no_such_db" does not exist',
    )
    wrong = dsn_of(target, "not-the-password")
    refused(
        tmp_path / "b",
        "init",
        "--store",
        "postgres",
        "--dsn",
        wrong,
        needle="password authentication failed",
    )


@pytest.mark.parametrize(
    ("dsn", "needle"),
    [
        ("garbage here", 'bad --dsn: missing "="'),
        ("postgresql://u@127.0.0.1:5432/db?sslmode=require", "not sslmode"),
        ("postgresql://u@127.0.0.1:5432/", "name the database"),
        ("postgresql://u@127.0.0.1:x/db", "bad --dsn"),
    ],
)
def test_a_bad_dsn_is_one_line(tmp_path: Path, dsn: str, needle: str) -> None:
    refused(tmp_path / "h", "init", "--store", "postgres", "--dsn", dsn, needle=needle)
    assert not (tmp_path / "h").exists()


def test_init_options_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHERATAN_DSN", raising=False)
    refused(tmp_path / "h", "init", "--store", "postgres", needle="needs --dsn (or $SHERATAN_DSN)")
    refused(
        tmp_path / "h", "init", "--dsn", "postgresql://u@h/db", needle="only for --store postgres"
    )


def test_the_dsn_may_come_from_the_environment(
    tmp_path: Path, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHERATAN_DSN", postgres_dsn)
    home = tmp_path / "env-home"
    assert as_json(home, "init", "--store", "postgres")["created"]
    as_json(home, "mission", "create", "from env")


def test_every_command_runs_on_postgres() -> None:
    """A new command must be made to run on PostgreSQL (and join SUPPORTED) or be refused
    there on purpose: nothing is left unclassified (benches never open the home)."""
    import click

    import cli

    def paths(group: click.Group, prefix: str) -> Iterator[str]:
        for name, command in group.commands.items():
            path = f"{prefix} {name}".strip()
            if isinstance(command, click.Group):
                if command.invoke_without_command:
                    yield path
                yield from paths(command, path)
            else:
                yield path

    commands = set(paths(cli.cli, ""))
    assert {c for c in commands if not c.startswith("bench ")} == set(SUPPORTED)
    with pytest.raises(NotOnPostgresError, match="does not run on a PostgreSQL home yet"):
        check_supported("frobnicate")


def test_mission_activate_policy_rebuild_and_benches_on_postgres(
    pg_home: Path, tmp_path: Path
) -> None:
    mission = as_json(pg_home, "mission", "create", "Nightly")["id"]
    invoke(pg_home, "mission", "activate", mission)
    assert as_json(pg_home, "mission", "show", mission)["status"] == "active"
    assert as_json(pg_home, "policy", "show")["gates"]["allowed_kinds"]
    home = Home.open(pg_home)
    try:
        last = home.log.last_position()
    finally:
        home.close()
    learned = as_json(pg_home, "policy", "diff", "--from", "0", "--to", str(last))["changes"]
    assert {change["intent"] for change in learned} >= {"dispatch_job"}  # the seeded priors
    rebuilt = as_json(pg_home, "rebuild")
    assert rebuilt["swapped"] and rebuilt["views"]["jobs"]["position"] == last
    # a bench never opens the home: its own error, not a refusal
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    refused(pg_home, "bench", "compare", str(bad), str(bad), needle="is not a bench report")
