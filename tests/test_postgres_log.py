"""The notification log of a PostgreSQL home read as ledger lines (sheratan.postgres.log):
positions are the library's notification ids (they may skip numbers), lines carry the
ledger's keys, and the views fold from them as from the JSONL files. Real server."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    StoredEvent,
)
from eventsourcing.utils import Environment
from postgres_helpers import library_env

from sheratan.home import Home, init_home
from sheratan.postgres import log as log_module
from sheratan.postgres.log import PostgresLog
from sheratan.postgres.target import parse_dsn
from sheratan.views import JOBS


@pytest.fixture
def recorder(postgres_dsn: str) -> Iterator[ApplicationRecorder]:
    factory = InfrastructureFactory.construct(Environment("Sheratan", library_env(postgres_dsn)))
    yield factory.application_recorder()
    factory.close()


def test_lines_skip_the_numbers_a_refused_save_used(recorder: ApplicationRecorder) -> None:
    stream = uuid.uuid4()
    recorder.insert_events([StoredEvent(stream, 1, "t.a", b'{"timestamp":"2026-01-01T00:00:00Z"}')])
    with pytest.raises(IntegrityError):
        recorder.insert_events(
            [StoredEvent(uuid.uuid4(), 1, "t.b", b"{}"), StoredEvent(stream, 1, "t.a", b"{}")]
        )
    recorder.insert_events([StoredEvent(stream, 2, "t.c", b"\x00binary")])
    log = PostgresLog(recorder)
    lines = [(pos, json.loads(raw)) for pos, raw in log.lines(1, log.last_position())]
    assert [line["topic"] for _, line in lines] == ["t.a", "t.c"]
    assert [pos for pos, _ in lines] == [line["pos"] for _, line in lines]
    assert lines[0][0] == 1 and lines[1][0] == log.last_position() > 2  # the gap
    first, second = lines[0][1], lines[1][1]
    assert list(first) == ["pos", "ts", "stream", "ver", "topic", "data"]
    assert (first["ts"], first["stream"], first["ver"]) == ("2026-01-01T00:00:00Z", str(stream), 1)
    assert second["data"] is None and base64.b64decode(second["raw"]) == b"\x00binary"
    assert log.hash_at(1) != log.hash_at(log.last_position())
    assert log.hash_at(2) is None and log.hash_at(0) is None


def test_lines_are_read_in_batches(
    recorder: ApplicationRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "BATCH", 3)
    for version in range(1, 11):
        recorder.insert_events([StoredEvent(uuid.uuid4(), version, "t", b"{}")])
    log = PostgresLog(recorder)
    assert [pos for pos, _ in log.lines(2, 9)] == list(range(2, 10))
    assert [pos for pos, _ in log.lines(1, 10)] == list(range(1, 11))


def test_views_fold_from_the_database_and_resume(tmp_path: Path, postgres_dsn: str) -> None:
    target, password = parse_dsn(postgres_dsn)
    path = tmp_path / "home"
    init_home(path, target, password)
    home = Home.open(path)
    first = home.app.create_job("noop", {})
    assert list(home.views.current(JOBS).jobs) == [first]
    second = home.app.create_job("noop", {})
    home.close()
    again = Home.open(path)  # resumes from the saved view, checked against the database
    assert list(again.views.current(JOBS).jobs) == [first, second]
    again.close()
