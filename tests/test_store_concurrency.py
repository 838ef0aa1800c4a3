"""Concurrent writers: processes and threads, group commit, optimistic concurrency."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    StoredEvent,
)
from eventsourcing.utils import Environment
from postgres_helpers import library_env
from store_helpers import (
    Ack,
    assert_log_whole,
    decoded_lines,
    only_segment,
    parse_ack,
    save_of,
    start_writer,
    stored,
    tree_bytes,
    verify_home,
)

from sheratan.store.factory import open_ledger
from sheratan.store.files import FileLock
from sheratan.store.ledger import Ledger
from sheratan.store.recorders import JsonlApplicationRecorder


class Store:
    """An application recorder under test: the embedded store's (with its home) or the
    library's PostgreSQL one, each on a fresh log."""

    def __init__(self, recorder: ApplicationRecorder, home: Path | None = None) -> None:
        self.recorder = recorder
        self.home = home

    def state(self) -> Any:
        """What a refused save must leave as it was: the home's every byte, or every
        notification in the database."""
        if self.home is not None:
            return tree_bytes(self.home)
        return self.recorder.select_notifications(1, 100_000)

    def assert_whole(self, total: int) -> None:
        """``total`` events, each (stream, version) once; on the embedded store also a
        verified chain over gapless positions."""
        if self.home is not None:
            assert verify_home(self.home).verified == total
            keys = [(line["stream"], line["ver"]) for line in decoded_lines(self.home)]
        else:
            found = self.recorder.select_notifications(1, total + 1)
            keys = [(str(n.originator_id), n.originator_version) for n in found]
        assert len(keys) == total
        assert len(set(keys)) == total, "a (stream, version) was written twice"


@pytest.fixture(params=["sheratan.store", "eventsourcing.postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sheratan.store":
        home = tmp_path / "home"
        yield Store(JsonlApplicationRecorder(open_ledger(home)), home)
        return
    env = Environment("Sheratan", library_env(request.getfixturevalue("postgres_dsn")))
    factory = InfrastructureFactory.construct(env)
    yield Store(factory.application_recorder())
    factory.close()


def _assert_log_is_whole(home: Path, expected_events: int) -> list[dict[str, Any]]:
    """Gapless positions, no duplicate (stream, version), each save's lines contiguous."""
    lines = assert_log_whole(home, expected_events)
    keys = [(line["stream"], line["ver"]) for line in lines]
    assert len(set(keys)) == len(keys), "a (stream, version) was written twice"
    return lines


def test_two_processes_appending_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    saves = 300
    writers = [start_writer(tmp_path, home, tag, saves, wait=True) for tag in ("A", "B")]
    for proc in writers:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
    for proc in writers:  # both start their first save at once
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    acks: list[Ack] = []
    for proc in writers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.endswith("done\n")
        acks.extend(a for a in map(parse_ack, out.splitlines()) if a is not None)
    assert len(acks) == 2 * saves

    total = sum(ack.n for ack in acks)
    positions = sorted(p for ack in acks for p in ack.positions)
    assert positions == list(range(1, total + 1)), "acknowledged positions are not 1..N once each"
    lines = _assert_log_is_whole(home, total)
    for ack in acks:
        assert [lines[p - 1]["stream"] for p in ack.positions] == [str(ack.stream)] * ack.n
        assert [lines[p - 1]["data"] for p in ack.positions] == [
            {"tag": ack.tag, "i": ack.i, "v": v} for v in range(1, ack.n + 1)
        ]
    # a fresh open agrees
    recorder = JsonlApplicationRecorder(Ledger(home))
    assert recorder.max_notification_id() == total


def test_two_processes_taking_turns_see_each_others_saves(tmp_path: Path) -> None:
    """Saves alternate between two processes by the test's say-so: each one's next save
    lands right after the other's last, so each catches up on the other's lines first."""
    home = tmp_path / "home"
    home.mkdir()
    turns = 20
    writers = {tag: start_writer(tmp_path, home, tag, turns, step=True) for tag in ("A", "B")}
    expected_next = 1
    order = []
    for i in range(1, turns + 1):
        for tag, proc in writers.items():
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            ack = parse_ack(proc.stdout.readline())
            assert ack is not None and (ack.tag, ack.i) == (tag, i)
            assert ack.positions == tuple(range(expected_next, expected_next + ack.n))
            expected_next += ack.n
            order.extend([tag] * ack.n)
    for proc in writers.values():
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    lines = _assert_log_is_whole(home, expected_next - 1)
    assert [line["data"]["tag"] for line in lines] == order


def test_saves_queued_behind_the_lock_share_one_commit(tmp_path: Path) -> None:
    """Group commit, made certain: while another holder keeps the home's lock, eight threads
    queue a save each behind a leader; the next commit writes all eight with one timestamp."""
    home = tmp_path / "home"
    ledger = Ledger(home)
    recorder = JsonlApplicationRecorder(ledger)
    streams = [uuid.uuid4() for _ in range(9)]
    threads = [
        threading.Thread(target=recorder.insert_events, args=(save_of(s, 1),)) for s in streams
    ]
    blocker = FileLock(home / "locks" / "events.lock")
    with blocker.held():
        threads[0].start()  # it leads, takes itself as its batch, and waits for the lock
        _wait_for(lambda: ledger._leading and not ledger._queue, "the first leader")
        for queued, thread in enumerate(threads[1:], 1):
            thread.start()
            _wait_for(lambda q=queued: len(ledger._queue) == q, "a save to queue")
    blocker.close()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
    lines = _assert_log_is_whole(home, 9)
    assert lines[0]["stream"] == str(streams[0])
    assert {line["stream"] for line in lines[1:]} == {str(s) for s in streams[1:]}
    assert len({line["ts"] for line in lines[1:]}) == 1  # one commit
    assert lines[1]["ts"] != lines[0]["ts"]


def _run_threads(count: int, target: Callable[[int], Any]) -> list[Any]:
    """Run ``target(k)`` in ``count`` threads started together; re-raise any failure."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            barrier.wait()
            results[k] = target(k)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    if errors:
        raise errors[0]
    return results


def test_eight_threads_saving_at_once(store: Store) -> None:
    recorder = store.recorder
    per_thread = 60

    def saver(k: int) -> list[tuple[uuid.UUID, int, list[int]]]:
        done = []
        for i in range(per_thread):
            stream = uuid.uuid4()
            n = 1 + (k + i) % 3
            positions = recorder.insert_events(save_of(stream, n, i))
            assert positions is not None
            done.append((stream, n, list(positions)))
        return done

    results = _run_threads(8, saver)
    saves = [save for per in results for save in per]
    total = sum(n for _, n, _ in saves)
    positions = sorted(p for _, _, ps in saves for p in ps)
    assert positions == list(range(1, total + 1))
    store.assert_whole(total)
    at = {n.id: n for n in recorder.select_notifications(1, total + 1)}
    for stream, n, ps in saves:
        assert ps == list(range(ps[0], ps[0] + n)), "a save's events are not contiguous"
        assert [at[p].originator_id for p in ps] == [stream] * n
        assert [e.originator_version for e in recorder.select_events(stream)] == list(
            range(1, n + 1)
        )


def test_threads_racing_for_the_next_version_of_one_stream(store: Store) -> None:
    """Eight threads each try to append the next version; exactly one wins each version."""
    recorder = store.recorder
    stream = uuid.uuid4()
    target_version = 120

    def racer(k: int) -> tuple[int, int]:
        wins = conflicts = 0
        while True:
            last = recorder.select_events(stream, desc=True, limit=1)
            current = last[0].originator_version if last else 0
            if current >= target_version:
                return wins, conflicts
            try:
                recorder.insert_events([stored(stream, current + 1, k)])
                wins += 1
            except IntegrityError:
                conflicts += 1

    results = _run_threads(8, racer)
    assert sum(wins for wins, _ in results) == target_version
    events = recorder.select_events(stream)
    assert [e.originator_version for e in events] == list(range(1, target_version + 1))
    store.assert_whole(target_version)


def test_duplicate_version_raises_and_writes_nothing(store: Store) -> None:
    recorder = store.recorder
    stream = uuid.uuid4()
    recorder.insert_events(save_of(stream, 2))
    before = store.state()
    other = uuid.uuid4()
    # the save's other event is fine, but the save is all or nothing
    with pytest.raises(IntegrityError):
        recorder.insert_events([stored(other, 1), stored(stream, 2)])
    with pytest.raises(IntegrityError):  # twice within one save
        recorder.insert_events([stored(other, 1), stored(other, 1)])
    assert store.state() == before
    assert recorder.select_events(other) == []
    # the next save follows; on PostgreSQL a refused save may have used sequence numbers
    (position,) = recorder.insert_events([stored(other, 1)]) or [0]
    assert position == 3 if store.home is not None else position > 2


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def test_conflicting_saves_fail_alone_within_a_group_commit(tmp_path: Path) -> None:
    """A group commit with conflicting saves: they raise and write nothing; the rest land.

    The home's file lock is held from outside (as another process would) so that saves pile
    up in the queue and the next leader commits them as one group.
    """
    home = tmp_path / "home"
    ledger = Ledger(home)
    recorder = JsonlApplicationRecorder(ledger)
    existing = uuid.uuid4()
    recorder.insert_events(save_of(existing, 2))  # positions 1, 2
    segment = only_segment(home)
    size_before = segment.stat().st_size

    first, good1, good2, unwritten = (uuid.uuid4() for _ in range(4))
    saves: dict[str, list[StoredEvent]] = {
        "first": save_of(first, 1),
        "good1": save_of(good1, 2),
        "dup_existing": [stored(unwritten, 1), stored(existing, 2)],
        "good2": save_of(good2, 1),
        "dup_in_group": [stored(good1, 1)],  # good1 claims it earlier in the same group
    }
    outcome: dict[str, Any] = {}

    def save(name: str) -> None:
        try:
            outcome[name] = recorder.insert_events(saves[name])
        except IntegrityError as error:
            outcome[name] = error

    blocker = FileLock(home / "locks" / "events.lock")
    threads = []
    with blocker.held():
        for name in saves:
            queued = len(ledger._queue)
            thread = threading.Thread(target=save, args=(name,))
            thread.start()
            threads.append(thread)
            if name == "first":  # it leads, takes itself as its batch, and waits for the lock
                _wait_for(lambda: ledger._leading and not ledger._queue, "the first leader")
            else:
                _wait_for(lambda q=queued: len(ledger._queue) == q + 1, f"{name} to queue")
        assert segment.stat().st_size == size_before
    blocker.close()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()

    assert outcome["first"] == [3]
    assert outcome["good1"] == [4, 5]
    assert outcome["good2"] == [6]
    assert isinstance(outcome["dup_existing"], IntegrityError)
    assert isinstance(outcome["dup_in_group"], IntegrityError)
    lines = decoded_lines(home)
    assert [line["stream"] for line in lines] == [
        str(s) for s in (existing, existing, first, good1, good1, good2)
    ]
    # positions 4-6 were one group commit (one write, one fsync, one timestamp)
    assert lines[3]["ts"] == lines[4]["ts"] == lines[5]["ts"] != lines[2]["ts"]
    assert recorder.select_events(unwritten) == []
    assert [e.state for e in recorder.select_events(existing)] == [
        e.state for e in save_of(existing, 2)
    ]
    result = verify_home(home)
    assert result.ok, result.problem
    assert result.verified == 6
