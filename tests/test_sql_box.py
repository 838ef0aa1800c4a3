"""`sql` stays inside its box, and the Parquet cache is checked, never trusted.

The box: no file is read but the views' own cache (an absolute allowed directory, so no path
relative to the working directory), a time limit per query, a memory limit with no spilling.
The cache: a file that does not parse, or was not made from the sealed segment it claims,
is rebuilt (one line on stderr), never served; a forged file never changes an answer.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

import sheratan.analytics.session as session_module
import sheratan.store.ledger as ledger_module
from sheratan.analytics.session import (
    CACHE_FORMAT,
    META_FORMAT,
    META_SOURCE,
)
from sheratan.store.factory import open_ledger
from sheratan.store.files import file_digest
from tests.cli_helpers import as_json, invoke
from tests.decision_helpers import simulated_home

OUTSIDE = "error: the query reaches outside the views (files, network): `sql` is read-only"
COUNTS = "SELECT topic, count(*) AS n FROM events GROUP BY topic ORDER BY topic"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("box") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ledger_module, "SEGMENT_MAX_BYTES", 256 * 1024)
        opened, _ = simulated_home(path, 400, epsilon=0.2, seed=5)
        opened.close()
    assert len(list((path / "events").glob("*.jsonl"))) >= 3
    yield path


@pytest.fixture(scope="module")
def truth(home: Path) -> tuple[list[dict[str, object]], dict[str, object]]:
    """Answers from a fresh cache, before any test touches it."""
    return as_json(home, "sql", COUNTS), as_json(home, "why", "stats")


def _cache_files(home: Path, table: str) -> list[Path]:
    return sorted((home / "analytics").glob(f"*-v{CACHE_FORMAT}.{table}.parquet"))


# ------------------------------------------------------------------------------ the box


def test_a_relative_read_is_refused(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "x.csv").write_text("a\n1\n")
    monkeypatch.chdir(tmp_path)
    result = invoke(home, "sql", "SELECT * FROM read_csv('.tmp/x.csv')", code=2)
    assert result.stderr.splitlines() == [OUTSIDE]


def test_a_relative_home_allows_no_relative_reads(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --home given relative to the working directory, the allowed folder is still the
    absolute cache folder: a path relative to the cwd (even one through the cache) is refused,
    the cache by its absolute path is read."""
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "x.csv").write_text("a\n1\n")
    (tmp_path / "link").symlink_to(home.parent)
    monkeypatch.chdir(tmp_path)
    relative_home = Path("link") / home.name
    for path in (".tmp/x.csv", "link/home/analytics/../../../.tmp/x.csv"):
        result = invoke(relative_home, "sql", f"SELECT * FROM read_csv('{path}')", code=2)
        assert result.stderr.splitlines() == [OUTSIDE]
    cached = _cache_files(home, "events")[0]
    absolute = f"SELECT count(*) AS n FROM read_parquet('{cached}')"
    assert as_json(relative_home, "sql", absolute)[0]["n"] > 0


def test_a_query_past_its_time_limit_stops(home: Path) -> None:
    result = invoke(
        home, "sql", "--timeout", "0.5", "SELECT count(*) FROM range(100000000000)", code=2
    )
    assert result.stderr.splitlines() == [
        "error: the query ran past its time limit of 0.5 s (see --timeout)"
    ]
    assert as_json(home, "sql", "SELECT 42 AS n") == [{"n": 42}]  # the next query runs


def test_memory_is_limited_and_never_spilled_and_the_limits_are_locked(home: Path) -> None:
    settings = "SELECT current_setting('memory_limit') AS m, current_setting('temp_directory') AS t"
    assert as_json(home, "sql", settings) == [{"m": "953.6 MiB", "t": ""}]
    result = invoke(home, "sql", "SET memory_limit = '100GB'", code=2)
    assert result.stderr.splitlines() == [
        "error: SET statements are refused: `sql` is read-only "
        "(SELECT over events, decisions, jobs, priors_history, scores, charges, self_heals)"
    ]


# ---------------------------------------------------------------------------- the cache


def test_a_garbage_cache_file_is_rebuilt_and_said_once(home: Path, truth: tuple) -> None:  # type: ignore[type-arg]
    counts, stats = truth
    victim = _cache_files(home, "events")[0]
    victim.write_bytes(b"garbage, not parquet" * 100)
    result = invoke(home, "sql", COUNTS, "--json")
    assert json.loads(result.stdout) == counts
    notes = result.stderr.splitlines()
    assert len(notes) == 1
    assert notes[0].startswith("note: rebuilt the analytics cache of ")
    assert victim.name.split("-")[0] + ".jsonl" in notes[0]
    again = invoke(home, "why", "stats", "--json")
    assert json.loads(again.stdout) == stats
    assert again.stderr == ""  # rebuilt once, then served


def _forge(home: Path, target: Path, *, digest: str | None) -> None:
    """3,073 rows of a made-up topic written by DuckDB, with our metadata when ``digest``."""
    meta = ""
    if digest is not None:
        meta = f", KV_METADATA {{{META_FORMAT}: '{CACHE_FORMAT}', {META_SOURCE}: '{digest}'}}"
    con = duckdb.connect()
    try:
        con.execute(
            "COPY (SELECT range::BIGINT AS pos, TIMESTAMP '2026-01-01' AS ts, 'x' AS stream, "
            "1::BIGINT AS ver, 'made.up' AS topic, '{}'::JSON AS data FROM range(3073)) "
            f"TO '{target}' (FORMAT parquet{meta})"
        )
    finally:
        con.close()


@pytest.mark.parametrize("with_digest", [False, True])
def test_a_forged_cache_file_never_changes_an_answer(
    home: Path,
    truth: tuple,  # type: ignore[type-arg]
    with_digest: bool,
) -> None:
    """Forged without our metadata, or with the real segment's digest copied into it."""
    counts, stats = truth
    victim = _cache_files(home, "events")[1]
    segment = home / "events" / (victim.name.split("-")[0] + ".jsonl")
    _forge(home, victim, digest=open_ledger(home).seal_for(segment).digest if with_digest else None)  # type: ignore[union-attr]
    result = invoke(home, "sql", COUNTS, "--json")
    assert json.loads(result.stdout) == counts
    assert "made.up" not in result.stdout
    assert result.stderr.count("note: rebuilt the analytics cache") == 1
    assert as_json(home, "why", "stats") == stats


def test_a_cache_made_from_another_segment_is_rebuilt(home: Path, truth: tuple) -> None:  # type: ignore[type-arg]
    """A real cache file of one segment put in place of another's."""
    counts, _ = truth
    first, second = _cache_files(home, "events")[:2]
    second.write_bytes(first.read_bytes())
    result = invoke(home, "sql", COUNTS, "--json")
    assert json.loads(result.stdout) == counts
    assert result.stderr.count("note: rebuilt") == 1


def test_the_active_segment_is_cached_in_checked_chunks(
    home: Path,
    truth: tuple,  # type: ignore[type-arg]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Chunks of the active segment: built once, combined with what came after, and a
    garbage or forged chunk is rebuilt, never served."""
    counts, _ = truth
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    monkeypatch.setattr(session_module, "CHUNK_MIN_BYTES", 1024)
    assert as_json(copy, "sql", COUNTS) == counts
    active = sorted((copy / "events").glob("*.jsonl"))[-1]
    pattern = f"{active.stem}-*-*-v{CACHE_FORMAT}.events.parquet"
    [chunk] = (copy / "analytics").glob(pattern)
    assert chunk.name == f"{active.stem}-0-{active.stat().st_size}-v{CACHE_FORMAT}.events.parquet"

    # what comes after the chunk is read with it
    job = as_json(copy, "job", "create", "noop", "--payload", '{"password": "hunter2"}')["id"]
    grown = Counter({row["topic"]: row["n"] for row in counts})
    grown.update(["job.created", "job.queued"])
    after = as_json(copy, "sql", COUNTS)
    assert Counter({row["topic"]: row["n"] for row in after}) == grown
    assert list((copy / "analytics").glob(pattern)) == [chunk]  # the new bytes: parsed live
    shown = as_json(copy, "sql", f"SELECT data FROM events WHERE stream = '{job}'")
    assert "hunter2" not in json.dumps(shown)

    chunk.write_bytes(b"garbage")
    result = invoke(copy, "sql", COUNTS, "--json")
    assert json.loads(result.stdout) == after
    assert result.stderr.count("note: rebuilt the analytics cache of") == 1
    assert f"{active.name} (bytes 0.." in result.stderr

    [rebuilt] = sorted((copy / "analytics").glob(pattern))[:1]
    end = int(rebuilt.name.split("-")[2])
    _forge(copy, rebuilt, digest=file_digest(active, 0, end))
    result = invoke(copy, "sql", COUNTS, "--json")
    assert json.loads(result.stdout) == after
    assert result.stderr.count("note: rebuilt") == 1
