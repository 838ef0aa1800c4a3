"""DuckDB reads the log while a writer appends: never a partial line, never an error.

Deterministic: the writer is a real process that saves only when told (so each cut's exact
content is known), and a writer caught mid-write is made by writing its bytes by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from store_helpers import (
    REPO_ROOT,
    Ack,
    append_bytes,
    only_segment,
    parse_ack,
    save_of,
    segments,
    truncate,
)

from sheratan.analytics.reader import CommittedLog, read_ndjson_sql
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


#: A writer driven step by step: each line ``N`` on stdin makes it do N saves (the same saves
#: as ``store_helpers``' writer, acknowledged the same way, after fsync), then print ``step``.
STEPPED_WRITER = """
import sys, uuid
from pathlib import Path
from eventsourcing.persistence import StoredEvent
from sheratan.store.factory import open_ledger
from sheratan.store.recorders import JsonlApplicationRecorder
from tests.store_helpers import TOPICS, WRITER_NAMESPACE, writer_state

home, tag = Path(sys.argv[1]), sys.argv[2]
recorder = JsonlApplicationRecorder(open_ledger(home))
i = 0
for line in sys.stdin:
    for _ in range(int(line)):
        i += 1
        stream = uuid.uuid5(WRITER_NAMESPACE, f"{tag}-{i}")
        n = 1 + i % 3
        events = [
            StoredEvent(stream, v, TOPICS[(i + v) % 3], writer_state(tag, i, v))
            for v in range(1, n + 1)
        ]
        print(tag, i, n, *recorder.insert_events(events), flush=True)
    print("step", flush=True)
"""
#: Saves per step: single saves, and runs long enough to roll several 4 KiB segments.
STEPS = (1, 2, 5, 17, 40, 1, 60)


class SteppedWriter:
    """A writer process that saves only when told, so a test knows what is committed."""

    def __init__(self, tmp_path: Path, home: Path) -> None:
        script = tmp_path / "stepped_writer.py"
        script.write_text(STEPPED_WRITER)
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(home), "W"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "SHERATAN_SEGMENT_BYTES": "4096"},
        )
        self.acks: list[Ack] = []

    def step(self, saves: int) -> None:
        """Make ``saves`` saves and return once every one is acknowledged."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{saves}\n")
        self.process.stdin.flush()
        acks = []
        while (line := self.process.stdout.readline()) != "step\n":
            ack = parse_ack(line)
            assert ack is not None, f"the writer said {line!r}"
            acks.append(ack)
        assert len(acks) == saves
        self.acks += acks

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(timeout=30) == 0


def test_each_cut_holds_exactly_what_was_acknowledged_before_it(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """Step by step: after each acknowledged step, a new cut holds exactly the acknowledged
    events (no more, no fewer, positions 1..last), and the previous cut, queried after the
    writer has moved on, rolled segments and sealed the one it was snapshotted from, still
    answers exactly what it held."""
    home = tmp_path / "home"
    home.mkdir()
    writer = SteppedWriter(tmp_path, home)
    with CommittedLog(home) as log:
        previous_files, previous_counts = log.files(), Counter[str]()
        assert _counts(con, previous_files) == Counter()
        try:
            for saves in STEPS:
                writer.step(saves)
                acked = [p for ack in writer.acks for p in ack.positions]
                assert acked == list(range(1, len(acked) + 1))
                files = log.files()
                assert log.last_position == acked[-1]
                expected = Counter(topic for ack in writer.acks for topic in ack.topics())
                assert _counts(con, files) == expected
                span = con.execute(
                    f"SELECT min(pos), max(pos), count(DISTINCT pos) FROM {read_ndjson_sql(files)}"
                ).fetchone()
                assert span == (1, acked[-1], acked[-1])
                # the cut before this step, read only now, is what it was
                assert _counts(con, previous_files) == previous_counts
                previous_files, previous_counts = files, expected
        finally:
            writer.close()
        tags = con.execute(f"SELECT DISTINCT data->>'tag' FROM {read_ndjson_sql(log.files())}")
        assert tags.fetchall() == [("W",)]
    assert len(segments(home)) > 3  # the writer rolled segments between the reader's cuts


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
