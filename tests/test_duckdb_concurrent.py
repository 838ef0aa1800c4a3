"""DuckDB reads the log while a writer appends: never a partial line, never an error."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from store_helpers import (
    append_bytes,
    only_segment,
    parse_ack,
    save_of,
    segments,
    start_writer,
    truncate,
)

from sheratan.analytics import CommittedLog, read_ndjson_sql
from sheratan.store import CorruptLogError
from sheratan.store.ledger import Ledger

COUNT_BY_TOPIC = "SELECT topic, count(*) FROM {source} GROUP BY topic"


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """A real in-memory DuckDB, closed after the test (no native objects left at exit)."""
    connection = duckdb.connect()
    yield connection
    connection.close()


def _counts(con: duckdb.DuckDBPyConnection, files: list[str]) -> Counter[str]:
    rows = con.execute(COUNT_BY_TOPIC.format(source=read_ndjson_sql(files))).fetchall()
    return Counter({topic: count for topic, count in rows})


def test_queries_while_a_writer_appends_never_fail(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # small segments, so the writer also seals and rolls segments under the reader's feet
    writer = start_writer(tmp_path, home, "W", 2_000, env={"SHERATAN_SEGMENT_BYTES": "65536"})
    totals: list[int] = []
    with CommittedLog(home) as log:
        while len(totals) < 100 or writer.poll() is None:
            files = log.files()
            counts = _counts(con, files)  # raises on any partial or malformed line
            total = sum(counts.values())
            assert total == log.last_position, "DuckDB saw other than the committed lines"
            assert not totals or total >= totals[-1]
            totals.append(total)
            if len(totals) > 5_000:
                pytest.fail("the writer did not finish")
        out, err = writer.communicate(timeout=30)
        assert writer.returncode == 0, err
        acks = [a for a in map(parse_ack, out.splitlines()) if a is not None]
        assert len(acks) == 2_000
        expected = Counter(topic for ack in acks for topic in ack.topics())
        final = _counts(con, log.files())
        assert final == expected
        assert sum(final.values()) == log.last_position == sum(ack.n for ack in acks)
        # data is real JSON to DuckDB: fields are read directly
        tags = con.execute(
            f"SELECT DISTINCT data->>'tag' FROM {read_ndjson_sql(log.files())}"
        ).fetchall()
        assert tags == [("W",)]
    assert len(segments(home)) > 3  # the writer rolled segments while we read
    assert any(0 < t < totals[-1] for t in totals), "no query ran while the writer wrote"


def test_partial_tail_and_incomplete_save_stay_invisible(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """A writer caught mid-write: a partial line after the complete lines of an unfinished
    save. A raw read of the segments fails (or, ignoring errors, miscounts); the committed
    view sees exactly the committed events."""
    home = tmp_path / "home"
    writer = Ledger(home)
    for i in range(5):
        writer.append(save_of(uuid.uuid4(), 2, i))  # 10 committed events
    segment = only_segment(home)
    committed = segment.stat().st_size
    writer.append(save_of(uuid.uuid4(), 3, 99))
    unfinished = segment.read_bytes()[committed:].splitlines(keepends=True)
    del writer
    truncate(segment, committed)

    with CommittedLog(home) as log:
        assert sum(_counts(con, log.files()).values()) == 10
        # the writer is mid-write: two lines of its save are out, the third is half written
        append_bytes(segment, unfinished[0] + unfinished[1] + unfinished[2][:50])
        assert sum(_counts(con, log.files()).values()) == 10
        assert log.last_position == 10

        glob = str(home / "events" / "*.jsonl")
        raw = read_ndjson_sql([glob])
        with pytest.raises(duckdb.Error):
            con.execute(COUNT_BY_TOPIC.format(source=raw)).fetchall()
        lenient = raw.replace("ignore_errors=false", "ignore_errors=true")
        rows = con.execute(COUNT_BY_TOPIC.format(source=lenient)).fetchall()
        assert sum(count for _, count in rows) != 10  # why ignore_errors is no answer

        # the writer finishes its write: the save is committed and becomes visible
        append_bytes(segment, unfinished[2][50:])
        assert sum(_counts(con, log.files()).values()) == 13
        assert log.last_position == 13


def test_an_empty_log_and_a_corrupt_log(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    home = tmp_path / "home"
    with CommittedLog(home) as log:
        assert _counts(con, log.files()) == Counter()
        assert log.last_position == 0
    ledger = Ledger(home)
    for i in range(3):
        ledger.append(save_of(uuid.uuid4(), 1, i))
    segment = only_segment(home)
    data = segment.read_bytes()
    at = data.index(b'"i":1')
    segment.write_bytes(data[:at] + b'"i":7' + data[at + 5 :])
    with pytest.raises(CorruptLogError, match="position 2"):
        CommittedLog(tmp_path / "home", workdir=tmp_path / "work").files()
