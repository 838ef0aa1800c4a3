"""Crash safety: nothing acknowledged is lost, torn tails are quarantined, corruption stops appends.

Real files, real fsync, real processes killed with SIGKILL.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from store_helpers import (
    REPO_ROOT,
    Ack,
    all_lines,
    append_bytes,
    assert_log_whole,
    only_segment,
    parse_ack,
    save_of,
    start_writer,
    tree_bytes,
    truncate,
    verify_home,
)

from sheratan.store import CorruptLogError
from sheratan.store.ledger import Ledger
from sheratan.store.limits import MAX_NAME_CHARS, MAX_STATE_BYTES
from sheratan.store.lines import Trk
from sheratan.store.recorders import JsonlApplicationRecorder


def _kill_after(proc: subprocess.Popen[str], acks_wanted: int) -> list[Ack]:
    """Read acknowledgements until ``acks_wanted`` arrived, SIGKILL the writer, drain the rest."""
    assert proc.stdout is not None
    acks: list[Ack] = []
    while len(acks) < acks_wanted:
        line = proc.stdout.readline()
        assert line, f"writer ended early: {proc.stderr.read() if proc.stderr else ''}"
        ack = parse_ack(line)
        if ack is not None:
            acks.append(ack)
    os.kill(proc.pid, signal.SIGKILL)
    rest, _ = proc.communicate(timeout=10)  # what it printed before it died; closes the pipes
    for line in rest.splitlines(keepends=True):
        # a line cut off by the kill was never a complete acknowledgement
        ack = parse_ack(line) if line.endswith("\n") else None
        if ack is not None:
            acks.append(ack)
    assert proc.returncode == -signal.SIGKILL
    return acks


def _check_home(home: Path, acks: list[Ack]) -> int:
    """Every acknowledged save is there, whole, at its positions; positions are gapless."""
    ledger = Ledger(home)  # a fresh open, not the process's cached one
    recorder = JsonlApplicationRecorder(ledger)
    assert ledger.damage is None
    last = ledger.last_position()
    notifications = recorder.select_notifications(start=1, limit=last + 10)
    assert [n.id for n in notifications] == list(range(1, last + 1))
    by_position = {n.id: n for n in notifications}
    for ack in acks:
        events = recorder.select_events(ack.stream)
        assert [e.originator_version for e in events] == list(range(1, ack.n + 1))
        assert [e.state for e in events] == ack.states()
        assert [e.topic for e in events] == ack.topics()
        assert len(ack.positions) == ack.n
        for position, state in zip(ack.positions, ack.states(), strict=True):
            assert by_position[position].state == state
            assert by_position[position].originator_id == ack.stream
    # every save in the log is whole: each writer save is versions 1..n of its own stream,
    # so a stream's lines are contiguous and each names the stream's last line as its end
    assert_log_whole(home, last)
    return last


def test_sigkill_mid_run_loses_no_acknowledged_save(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    acked: list[Ack] = []
    last = 0
    for round_no, kill_after in enumerate((40, 150, 7)):
        proc = start_writer(tmp_path, home, f"r{round_no}")
        acks = _kill_after(proc, kill_after)
        assert len(acks) >= kill_after
        # the writer's first save follows the previous round's last committed position
        assert acks[0].positions[0] > last
        acked.extend(acks)
        last = _check_home(home, acked)
        assert last >= max(p for ack in acked for p in ack.positions)
    # acknowledged positions are unique
    positions = [p for ack in acked for p in ack.positions]
    assert len(positions) == len(set(positions))
    # and the log goes on from where it is
    recorder = JsonlApplicationRecorder(Ledger(home))
    assert recorder.insert_events(save_of(uuid.uuid4(), 2)) == [last + 1, last + 2]
    assert verify_home(home).ok


# ---------------------------------------------------------------- deterministic torn tails


def _home_with_torn_save(home: Path) -> tuple[Path, int, list[bytes]]:
    """A home of 5 saves (9 events); return its segment, committed size, and the 3 valid
    lines (with newlines) of a 6th save that was written and then cut off again."""
    ledger = Ledger(home)
    recorder = JsonlApplicationRecorder(ledger)
    for i in range(5):
        recorder.insert_events(save_of(uuid.uuid4(), 1 + i % 3, i))
    assert ledger.last_position() == 9
    segment = only_segment(home)
    committed = segment.stat().st_size
    recorder.insert_events(save_of(uuid.uuid4(), 3, 99))
    save_lines = segment.read_bytes()[committed:].splitlines(keepends=True)
    assert len(save_lines) == 3
    del recorder, ledger  # dropped without close(), as by a crash: no sidecar index is saved
    truncate(segment, committed)
    assert not (home / "index" / "events.idx").exists()
    return segment, committed, save_lines


@pytest.mark.parametrize(
    "torn",
    ["half_line", "save_missing_last_line", "save_with_torn_last_line"],
)
def test_torn_tail_is_quarantined_and_log_continues(tmp_path: Path, torn: str) -> None:
    home = tmp_path / "home"
    segment, _, save_lines = _home_with_torn_save(home)
    committed_bytes = segment.read_bytes()
    tail = {
        "half_line": save_lines[0][:40],
        "save_missing_last_line": save_lines[0] + save_lines[1],
        "save_with_torn_last_line": save_lines[0] + save_lines[1] + save_lines[2][:-30],
    }[torn]
    assert not tail.endswith(b"\n") or torn == "save_missing_last_line"
    append_bytes(segment, tail)

    torn_bytes = segment.read_bytes()
    ledger = Ledger(home)
    assert ledger.damage is None
    assert ledger.last_position() == 9  # the torn save is invisible to readers
    assert ledger.reports == []  # opening is read-only: the first write repairs
    assert segment.read_bytes() == torn_bytes
    assert not (home / "quarantine").exists()

    recorder = JsonlApplicationRecorder(ledger)
    stream = uuid.uuid4()
    assert recorder.insert_events(save_of(stream, 2)) == [10, 11]
    assert len(ledger.reports) == 1
    report = ledger.reports[0]
    assert f"torn tail of {len(tail)} bytes after position 9" in report
    assert "quarantine" in report
    quarantined = list((home / "quarantine").iterdir())
    assert len(quarantined) == 1
    assert str(quarantined[0]) in report
    assert quarantined[0].read_bytes() == tail
    # committed bytes untouched, torn bytes gone from the log, the new save after them
    assert segment.read_bytes().startswith(committed_bytes)
    assert tail not in segment.read_bytes()[len(committed_bytes) :]
    assert [e.originator_version for e in recorder.select_events(stream)] == [1, 2]
    assert [n.id for n in recorder.select_notifications(1, 100)] == list(range(1, 12))
    result = verify_home(home)
    assert result.ok, result.problem
    assert result.verified == 11

    # opening again finds nothing more to repair
    again = Ledger(home)
    assert again.reports == []
    assert again.last_position() == 11
    assert len(list((home / "quarantine").iterdir())) == 1


def test_torn_tail_is_repaired_by_a_new_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    segment, committed, save_lines = _home_with_torn_save(home)
    append_bytes(segment, save_lines[0] + save_lines[1][:25])
    code = (
        "import sys, uuid; from pathlib import Path\n"
        "from sheratan.store.factory import open_ledger\n"
        "from eventsourcing.persistence import StoredEvent\n"
        "ledger = open_ledger(Path(sys.argv[1]))\n"
        "print(len(ledger.reports), ledger.last_position())\n"
        "print(*ledger.append([StoredEvent(uuid.uuid4(), 1, 't', b'{}')]))\n"
        "print(len(ledger.reports))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(home)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert out.stdout.split() == ["0", "9", "10", "1"]  # repaired by the write, not the open
    assert "torn tail" in out.stderr  # logged as a warning
    assert segment.stat().st_size > committed
    assert len(list((home / "quarantine").iterdir())) == 1
    result = verify_home(home)
    assert result.ok, result.problem
    assert result.verified == 10


def test_corrupt_line_in_the_middle_refuses_appends_and_drops_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    recorder = JsonlApplicationRecorder(Ledger(home))
    streams = [uuid.uuid4() for _ in range(6)]
    for i, stream in enumerate(streams):
        recorder.insert_events([StoredEvent(stream, 1, "test.alpha", b'{"n":%d}' % (i + 1))])
    del recorder
    segment = only_segment(home)
    data = bytearray(segment.read_bytes())
    line3 = all_lines(home)[2]
    at = data.index(line3) + line3.index(b'"n":3') + len(b'"n":')
    data[at : at + 1] = b"7"  # still valid JSON; only the hash tells
    segment.write_bytes(bytes(data))
    assert not (home / "index" / "events.idx").exists()  # no cache to trust instead
    before = tree_bytes(home)

    ledger = Ledger(home)
    assert ledger.damage is not None
    with pytest.raises(CorruptLogError) as raised:
        JsonlApplicationRecorder(ledger).insert_events([StoredEvent(uuid.uuid4(), 1, "t", b"{}")])
    message = str(raised.value)
    assert "position 3" in message
    assert "sheratan audit verify" in message
    assert "restore" in message
    assert "--up-to-damage" in message
    assert segment.name in message
    # nothing dropped, nothing rewritten, nothing quarantined
    after = tree_bytes(home)
    assert {k: v for k, v in after.items() if not k.startswith("index/")} == before
    assert not (home / "quarantine").exists()
    result = verify_home(home)
    assert not result.ok
    assert result.first_bad_position == 3
    # a later open still refuses
    with pytest.raises(CorruptLogError, match="position 3"):
        Ledger(home).append([StoredEvent(uuid.uuid4(), 1, "t", b"{}")])
    assert tree_bytes(home) == before


def test_a_complete_but_corrupt_last_line_is_not_quarantined(tmp_path: Path) -> None:
    """Only an incomplete tail is torn; a complete final line that fails its hash is damage."""
    home = tmp_path / "home"
    ledger = Ledger(home)
    for i in range(3):
        ledger.append([StoredEvent(uuid.uuid4(), 1, "test.alpha", b'{"n":%d}' % i)])
    del ledger
    segment = only_segment(home)
    data = segment.read_bytes()
    at = data.rindex(b'"n":2')
    segment.write_bytes(data[:at] + b'"n":5' + data[at + 5 :])
    before = tree_bytes(home)
    ledger = Ledger(home)
    assert ledger.reports == []
    with pytest.raises(CorruptLogError, match="position 3"):
        ledger.append([StoredEvent(uuid.uuid4(), 1, "t", b"{}")])
    assert tree_bytes(home) == before


def test_a_save_at_the_state_limit_survives_reopen(tmp_path: Path) -> None:
    """Lines longer than one read chunk: a state of MAX_STATE_BYTES (base64 in ``raw``)."""
    home = tmp_path / "home"
    recorder = JsonlApplicationRecorder(Ledger(home))
    big = bytes(range(256)) * (MAX_STATE_BYTES // 256)
    stream = uuid.uuid4()
    assert recorder.insert_events([StoredEvent(stream, 1, "test.big", big)]) == [1]
    assert recorder.insert_events([StoredEvent(stream, 2, "t", b"{}")]) == [2]
    reopened = Ledger(home)  # rescans the log: the long line is not mistaken for damage
    assert reopened.damage is None
    assert recorder.select_notifications(1, 10)[0].state == big
    assert reopened.last_position() == 2
    again = JsonlApplicationRecorder(reopened)
    assert [e.state for e in again.select_events(stream)] == [big, b"{}"]
    assert [n.state for n in again.select_notifications(1, 10)] == [big, b"{}"]
    assert again.insert_events([StoredEvent(stream, 3, "t", b"{}")]) == [3]
    assert verify_home(home).ok


def test_names_over_the_limit_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    """Names are bounded so that every line a save may produce stays readable on reopen."""
    home = tmp_path / "home"
    ledger = Ledger(home)
    ledger.append([StoredEvent(uuid.uuid4(), 1, "t", b"{}")])
    before = tree_bytes(home)
    long_name = "x" * (MAX_NAME_CHARS + 1)
    with pytest.raises(IntegrityError):
        ledger.append([StoredEvent(long_name, 1, "t", b"{}")])
    with pytest.raises(IntegrityError):
        ledger.append([StoredEvent(uuid.uuid4(), 1, long_name, b"{}")])
    with pytest.raises(IntegrityError):
        ledger.append([StoredEvent(uuid.uuid4(), 1, "t", b"{}")], Trk(long_name, 1))
    assert tree_bytes(home) == before
    assert ledger.append([StoredEvent("y" * MAX_NAME_CHARS, 1, "t", b"{}")]) == [2]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_a_ledger_dropped_without_close_releases_its_files(tmp_path: Path) -> None:
    """A caller that never closes (or dies holding) a ledger leaks no file handles."""

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    gc.collect()
    before = open_fds()
    for i in range(20):
        ledger = Ledger(tmp_path / f"home-{i}")
        ledger.append([StoredEvent(uuid.uuid4(), 1, "t", b"{}")])
        ledger.lines_at([1])
        del ledger
    gc.collect()
    assert open_fds() == before


def test_audit_verify_beside_a_torn_tail_verifies_what_was_committed_and_moves_nothing(
    tmp_path: Path,
) -> None:
    """A torn tail is a save that was never acknowledged, not damage: `audit verify` checks
    the committed lines, says so, and leaves the bytes for the next writer to quarantine."""
    home = tmp_path / "home"
    segment, _, save_lines = _home_with_torn_save(home)
    append_bytes(segment, save_lines[0] + save_lines[1][:20])
    (home / "sheratan.json").write_text('{"format":1}')
    before = tree_bytes(home)
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "cli.py"), "audit", "verify", "--home", str(home)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("9/9 events verified")
    after = tree_bytes(home)
    assert {k: v for k, v in after.items() if not k.startswith("index/")} == before
    assert not (home / "quarantine").exists()
