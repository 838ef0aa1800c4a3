"""``export --to DIR`` and ``import --from DIR``: a whole log between the embedded store and
PostgreSQL with the same positions, hashes, ``audit verify`` and ``why stats``.

Real PostgreSQL (``postgres_dsn``), real CLI processes (``run_cli``)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from process_helpers import cli_json, cli_ok, cli_refused, run_cli
from store_helpers import all_lines

from events import utc_now
from events.audit import LogGap
from events.missions import MissionCreated
from sheratan.home import Home


def embedded_history(tmp_path: Path) -> Path:
    """An embedded home with real history: a paid simulation of a few hundred jobs."""
    home = tmp_path / "embedded"
    cli_ok(home, "init")
    cli_ok(home, "account", "open", "lab", "--balance", "100000")
    cli_ok(home, "simulate", "--jobs", "300", "--seed", "3", "--payer", "lab")
    return home


def refused_save(home: Path) -> None:
    """A save the database refuses (a second version 1 of a mission): PostgreSQL has drawn
    its id all the same, so the notification ids skip one."""
    opened = Home.open(home)
    try:
        mission = opened.app.create_mission("twice")
        again = MissionCreated(
            originator_id=mission, originator_version=1, timestamp=utc_now(), title="again"
        )
        with pytest.raises(Exception, match="duplicate key"):
            opened.app.save(again)
    finally:
        opened.close()


def postgres_history(pg_home: Path) -> Path:
    """A log written natively on PostgreSQL, with a gap in its ids."""
    mission = cli_json(pg_home, "mission", "create", "native")["id"]
    task = cli_json(pg_home, "task", "create", mission, "t")["id"]
    for n in range(3):
        cli_ok(pg_home, "job", "create", "noop", "--task", task, "--payload", f'{{"n":{n}}}')
    refused_save(pg_home)
    cli_ok(pg_home, "job", "create", "noop", "--task", task, "--payload", '{"n":9}')
    return pg_home


def verified(home: Path) -> dict:
    result = cli_json(home, "audit", "verify")
    assert result["ok"], result
    return {key: result[key] for key in ("events", "verified", "head", "ok")}


def why_stats(home: Path) -> dict:
    return cli_json(home, "why", "stats")


@pytest.mark.parametrize("origin", ["embedded", "postgres"])
def test_a_log_moves_both_ways_unchanged(
    origin: str, tmp_path: Path, postgres_dsn: str, request: pytest.FixtureRequest
) -> None:
    """embedded → D1 → PostgreSQL → D2, or PostgreSQL (with a gap) → D1 → embedded → D2:
    D1 and D2 hold the same bytes, and every home verifies and answers ``why stats`` alike."""
    if origin == "embedded":
        first = embedded_history(tmp_path)
        second = tmp_path / "imported-pg"
        where: tuple[str, ...] = ("--store", "postgres", "--dsn", postgres_dsn)
    else:
        first = postgres_history(request.getfixturevalue("pg_home"))
        second = tmp_path / "imported-embedded"
        where = ()
    d1, d2 = tmp_path / "D1", tmp_path / "D2"
    assert cli_json(first, "export", "--to", str(d1))["events"] > 0
    imported = cli_json(second, "import", "--from", str(d1), *where)
    assert imported["events"] == len(all_lines(d1))
    cli_ok(second, "export", "--to", str(d2))
    assert all_lines(d1) == all_lines(d2)
    assert verified(first) == verified(d1) == verified(second) == verified(d2)
    assert why_stats(first) == why_stats(second) == why_stats(d2)
    if origin == "postgres":
        gap = f'"topic":"{LogGap.TOPIC}"'.encode()
        assert any(gap in line for line in all_lines(d1)), "the refused save left a gap"
        # the imported embedded home folds past the gap like past any event
        assert len(cli_json(second, "job", "list")) == 4


def small_log(tmp_path: Path) -> Path:
    """An embedded home with a little history, exported to a folder."""
    home = tmp_path / "small"
    cli_ok(home, "init")
    cli_ok(home, "mission", "create", "m")
    folder = tmp_path / "D"
    cli_ok(home, "export", "--to", str(folder))
    return folder


def test_import_refuses_what_is_not_a_whole_log(tmp_path: Path) -> None:
    target = tmp_path / "target"
    cli_refused(target, "import", "--from", str(tmp_path / "nowhere"), needle="no folder")
    (tmp_path / "plain").mkdir()
    cli_refused(target, "import", "--from", str(tmp_path / "plain"), needle="not a Sheratan log")
    folder = small_log(tmp_path)
    segment = next((folder / "events").glob("*.jsonl"))
    data = segment.read_bytes()
    segment.write_bytes(data.replace(b'"title":"m"', b'"title":"M"'))
    cli_refused(target, "import", "--from", str(folder), needle="does not verify")
    assert not target.exists() or not any(target.iterdir()), "nothing was written"


def test_import_needs_an_empty_home_and_export_an_empty_folder(tmp_path: Path) -> None:
    folder = small_log(tmp_path)
    busy = tmp_path / "busy"
    cli_ok(busy, "init")  # init seeds the priors: a log already
    cli_refused(busy, "import", "--from", str(folder), needle="import needs an empty home")
    cli_refused(busy, "export", "--to", str(folder), needle="export --to needs a new or empty")


def test_a_database_with_an_unfinished_import_is_refused(tmp_path: Path, postgres_dsn: str) -> None:
    """What a crash half way through an import leaves (its row in sheratan_imports not
    done, no marker) is never taken for a whole log: neither an export nor another import
    runs on that database."""
    folder = small_log(tmp_path)
    home = tmp_path / "pg"
    cli_ok(home, "import", "--from", str(folder), "--store", "postgres", "--dsn", postgres_dsn)
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("UPDATE sheratan_imports SET done = false, imported = 1")
    line = run_cli(home, "export")
    assert line.returncode == 2 and "holds an unfinished import" in line.stderr
    again = tmp_path / "again"
    cli_refused(
        again,
        "import",
        "--from",
        str(folder),
        "--store",
        "postgres",
        "--dsn",
        postgres_dsn,
        needle="holds an unfinished import",
    )


def test_new_events_continue_after_an_imported_log(tmp_path: Path, postgres_dsn: str) -> None:
    """The import sets the sequence: the next event on PostgreSQL takes the next position."""
    folder = small_log(tmp_path)
    home = tmp_path / "pg"
    imported = cli_json(
        home, "import", "--from", str(folder), "--store", "postgres", "--dsn", postgres_dsn
    )
    cli_ok(home, "mission", "create", "after")
    assert cli_json(home, "export") == {
        "exported": imported["events"] + 1,
        "database": imported["events"] + 1,
    }
    assert cli_json(home, "audit", "verify")["ok"]


def test_why_and_audit_answer_on_postgres_as_on_the_embedded_home(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """A history with decisions, moved to PostgreSQL: why and the audit's proofs answer from
    the export as they did on the embedded home, each saying how far behind it is."""
    first = tmp_path / "embedded"
    cli_ok(first, "init")
    cli_ok(first, "simulate", "--jobs", "30", "--seed", "2")
    folder = tmp_path / "D"
    cli_ok(first, "export", "--to", str(folder))
    home = tmp_path / "pg"
    cli_ok(home, "import", "--from", str(folder), "--store", "postgres", "--dsn", postgres_dsn)
    latest = cli_json(first, "why", "latest")
    done = run_cli(home, "why", "latest", "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == latest
    assert "export: exported to" in done.stderr
    trace = ("why", "trace", latest["trace_id"])
    assert cli_json(home, *trace) == cli_json(first, *trace)
    assert cli_json(home, "why", "job", latest["job_id"]) == cli_json(
        first, "why", "job", latest["job_id"]
    )
    assert cli_json(home, "why", "drift") == cli_json(first, "why", "drift")
    keys = tmp_path / "keys"
    cli_ok(home, "audit", "keygen", "--out", str(keys))
    key, pub = str(keys / "sheratan-signing.key"), str(keys / "sheratan-signing.pub")
    cli_ok(home, "audit", "checkpoint", "--sign", key, "--export", str(tmp_path / "c1.json"))
    cli_ok(home, "mission", "create", "later")  # the log grows on PostgreSQL
    cli_ok(home, "audit", "checkpoint", "--sign", key, "--export", str(tmp_path / "c2.json"))
    proof = tmp_path / "proof.json"
    proof.write_text(cli_ok(home, "audit", "prove", "1", "--json").stdout)
    cli_ok(home, "audit", "verify-proof", str(proof), "--pubkey", pub)
    between = ("--from", str(tmp_path / "c1.json"), "--to", str(tmp_path / "c2.json"))
    cli_ok(home, "audit", "consistency", *between, "--pubkey", pub)
    assert cli_json(home, "audit", "verify", "--pubkey", pub)["ok"]
