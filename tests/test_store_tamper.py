"""Tampering is caught by ``audit.verify``, which names the first bad position; segment rolls."""

from __future__ import annotations

import hashlib
import uuid
import zlib
from pathlib import Path

import msgspec
import pytest
from eventsourcing.persistence import StoredEvent
from store_helpers import (
    all_lines,
    decoded_lines,
    only_segment,
    rechain,
    save_of,
    segments,
    stored,
    truncate,
    verify_home,
)

import sheratan.store.ledger as ledger_module
from sheratan.store import CorruptLogError
from sheratan.store.checkpoints import read_chain
from sheratan.store.index import segment_name
from sheratan.store.ledger import Ledger
from sheratan.store.recorders import JsonlApplicationRecorder

EVENTS = 12


def _home_of(tmp_path: Path, events: int = EVENTS) -> tuple[Path, Ledger]:
    """A home of ``events`` one-event saves whose data are {"n": <position>}."""
    home = tmp_path / "home"
    ledger = Ledger(home)
    for n in range(1, events + 1):
        ledger.append([StoredEvent(uuid.uuid4(), 1, "test.alpha", b'{"n":%d}' % n)])
    result = verify_home(home)
    assert result.ok, result.problem
    assert result.verified == events
    return home, ledger


def _rewrite_lines(home: Path, lines: list[bytes]) -> None:
    only_segment(home).write_bytes(b"".join(line + b"\n" for line in lines))


@pytest.mark.parametrize("k", [1, 5, EVENTS])
def test_changed_byte_is_named_by_position(tmp_path: Path, k: int) -> None:
    home, _ = _home_of(tmp_path)
    lines = all_lines(home)
    lines[k - 1] = lines[k - 1].replace(b'"n":%d}' % k, b'"n":%d}' % (k + 100))
    _rewrite_lines(home, lines)
    result = verify_home(home)
    assert not result.ok
    assert result.first_bad_position == k
    assert f"position {k}" in (result.problem or "")
    assert result.verified == k - 1


@pytest.mark.parametrize("k", [1, 6, EVENTS])
def test_flipped_bit_anywhere_in_a_line_is_named_by_position(tmp_path: Path, k: int) -> None:
    """A single flipped bit, wherever it lands (key, value, prev, hash), is caught at k."""
    home, _ = _home_of(tmp_path)
    original = all_lines(home)
    line = original[k - 1]
    for at in range(0, len(line), 7):
        lines = list(original)
        flipped = bytearray(line)
        flipped[at] ^= 0x01
        lines[k - 1] = bytes(flipped)
        _rewrite_lines(home, lines)
        result = verify_home(home)
        assert not result.ok, f"flip at byte {at} of line {k} went unnoticed"
        assert result.first_bad_position == k


@pytest.mark.parametrize("k", [1, 7, EVENTS])
def test_deleted_line_is_named_by_position(tmp_path: Path, k: int) -> None:
    home, _ = _home_of(tmp_path)
    lines = all_lines(home)
    del lines[k - 1]
    _rewrite_lines(home, lines)
    result = verify_home(home)
    if k == EVENTS:
        # deleting the last line leaves a valid shorter chain: only a checkpoint can tell
        assert result.ok
        assert result.verified == EVENTS - 1
    else:
        assert not result.ok
        assert result.first_bad_position == k
        assert f"found position {k + 1}: a gap" in (result.problem or "")


def test_swapped_lines_are_caught(tmp_path: Path) -> None:
    home, _ = _home_of(tmp_path)
    lines = all_lines(home)
    lines[3], lines[4] = lines[4], lines[3]
    _rewrite_lines(home, lines)
    result = verify_home(home)
    assert not result.ok
    assert result.first_bad_position == 4


def test_truncation_behind_a_checkpoint_names_the_first_missing_position(tmp_path: Path) -> None:
    home, ledger = _home_of(tmp_path)
    record = ledger.checkpoint()
    assert record["pos"] == EVENTS
    assert read_chain(home / "checkpoints" / "events.jsonl").records[-1].hash == ledger.index.head
    assert verify_home(home).ok
    segment = only_segment(home)
    lines = all_lines(home)
    kept = EVENTS - 3
    truncate(segment, sum(len(line) + 1 for line in lines[:kept]))
    result = verify_home(home)
    assert not result.ok
    assert result.first_bad_position == kept + 1
    assert str(EVENTS) in (result.problem or "")  # the checkpoint that vouches for more


def test_a_rewritten_chain_is_caught_by_its_checkpoint(tmp_path: Path) -> None:
    """Changing line k and recomputing every later hash fools the chain, not the checkpoint."""
    home, ledger = _home_of(tmp_path)
    ledger.checkpoint()
    k = 4
    lines = all_lines(home)
    lines[k - 1] = lines[k - 1].replace(b'"n":%d}' % k, b'"n":999}')
    lines = rechain(lines, k - 1)
    _rewrite_lines(home, lines)
    assert (home / "checkpoints" / "events.jsonl").exists()
    result = verify_home(home)
    assert not result.ok
    assert result.first_bad_position == EVENTS  # where the checkpoint pins the chain
    assert "checkpoint" in (result.problem or "")
    # without the checkpoint the forged chain would pass: the checkpoint is what catches it
    (home / "checkpoints" / "events.jsonl").unlink()
    assert verify_home(home).ok


# ------------------------------------------------------------------- sealed segment rolls


def test_segments_roll_at_the_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "SEGMENT_MAX_BYTES", 2_000)
    home = tmp_path / "home"
    ledger = Ledger(home)
    recorder = JsonlApplicationRecorder(ledger)
    long_stream = uuid.uuid4()  # one stream whose versions span every segment
    expected: list[bytes] = []
    for i in range(40):
        recorder.insert_events(save_of(uuid.uuid4(), 1 + i % 3, i))
        event = stored(long_stream, i + 1, i)
        recorder.insert_events([event])
        expected.append(event.state)
    total = ledger.last_position()
    assert total == sum(1 + i % 3 for i in range(40)) + 40

    paths = segments(home)
    assert len(paths) >= 5
    lines = decoded_lines(home)
    assert [line["pos"] for line in lines] == list(range(1, total + 1))
    starts = []
    for path in paths:
        first = msgspec.json.decode(path.read_bytes().split(b"\n", 1)[0])["pos"]
        assert path.name == segment_name(first)  # named by its first position
        starts.append(first)
    for path in paths[:-1]:  # rolled once full: no sealed segment is far past the limit
        assert 2_000 <= path.stat().st_size < 2_000 + 2_000
    # a seal checkpoint vouches for the last position of every sealed segment
    seals = [
        c for c in read_chain(home / "checkpoints" / "events.jsonl").records if c.reason == "seal"
    ]
    assert [c.pos for c in seals] == [first - 1 for first in starts[1:]]
    for seal in seals:
        assert lines[seal.pos - 1]["hash"] == seal.hash
    # each seal describes its segment: name, positions, size and the digest of its bytes
    for path, record, nxt in zip(paths, seals, starts[1:], strict=False):
        described = ledger.seal_for(path)
        assert described == record.seal
        assert (described.name, described.first, described.last) == (
            path.name,
            int(path.stem),
            nxt - 1,
        )
        assert described.size == path.stat().st_size
        assert described.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ledger.seal_for(paths[-1]) is None  # the active segment is not sealed

    # reads across segments, in this ledger and in fresh ones (with and without sidecar)
    def check_reads(recorder: JsonlApplicationRecorder) -> None:
        notifications = recorder.select_notifications(start=1, limit=total + 5)
        assert [n.id for n in notifications] == list(range(1, total + 1))
        around = recorder.select_notifications(start=starts[2] - 2, limit=5)
        assert [n.id for n in around] == list(range(starts[2] - 2, starts[2] + 3))
        assert [e.state for e in recorder.select_events(long_stream)] == expected
        middle = recorder.select_events(long_stream, gt=10, lte=30, desc=True)
        assert [e.originator_version for e in middle] == list(range(30, 10, -1))

    check_reads(recorder)
    assert (home / "index" / "events.idx").exists()  # saved at each roll
    check_reads(JsonlApplicationRecorder(Ledger(home)))
    active = segments(home)[-1]
    assert ledger.index.active_crc == zlib.crc32(active.read_bytes())  # kept by the writes
    (home / "index" / "events.idx").unlink()
    rebuilt = Ledger(home)
    assert rebuilt.index.active_crc == zlib.crc32(active.read_bytes())  # kept by the scan
    check_reads(JsonlApplicationRecorder(rebuilt))
    assert rebuilt.append(save_of(uuid.uuid4(), 2)) == [total + 1, total + 2]

    result = verify_home(home)
    assert result.ok, result.problem
    assert result.verified == total + 2
    assert result.segments == [p.name for p in segments(home)]


def test_a_missing_segment_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "SEGMENT_MAX_BYTES", 1_000)
    home = tmp_path / "home"
    ledger = Ledger(home)
    for i in range(30):
        ledger.append(save_of(uuid.uuid4(), 1, i))
    paths = segments(home)
    assert len(paths) >= 3
    missing_first = int(paths[1].stem)
    paths[1].unlink()
    result = verify_home(home)
    assert not result.ok
    assert result.first_bad_position == missing_first
    # the ledger refuses to append after the hole (it would fork the log)
    reopened = Ledger(home)
    with pytest.raises(CorruptLogError, match=f"position {missing_first}") as raised:
        reopened.append(save_of(uuid.uuid4(), 1))
    assert paths[1].name in str(raised.value)
    assert [p.name for p in segments(home)] == [p.name for p in paths if p != paths[1]]


def test_a_home_from_before_seals_is_checked_by_its_chain_then_sealed_by_the_next_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoint records without a chain (an older Sheratan) open as before; the first write
    seals the old segments, so later opens check them by digest and catch a rewrite."""
    monkeypatch.setattr(ledger_module, "SEGMENT_MAX_BYTES", 1_000)
    home = tmp_path / "home"
    ledger = Ledger(home)
    for i in range(30):
        ledger.append(save_of(uuid.uuid4(), 1, i))
    del ledger
    checkpoints = home / "checkpoints" / "events.jsonl"
    old = [
        msgspec.json.encode({"pos": r.pos, "hash": r.hash, "ts": r.ts, "reason": r.reason})
        for r in read_chain(checkpoints).records
    ]
    checkpoints.write_bytes(b"".join(line + b"\n" for line in old))
    (home / "index" / "events.idx").unlink()
    sealed = segments(home)[:-1]
    assert len(sealed) >= 3

    reopened = Ledger(home)
    assert reopened.damage is None
    assert all(reopened.seal_for(path) is None for path in sealed)
    reopened.append(save_of(uuid.uuid4(), 1))
    chain = read_chain(checkpoints)
    assert chain.problem is None
    assert [r.seal.name for r in chain.records if r.seal] == [p.name for p in sealed]
    assert verify_home(home).ok
    del reopened

    # a sealed segment rewritten with a consistent chain inside is now caught by its digest
    lines = sealed[1].read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"i":', b'"j":')
    sealed[1].write_bytes(b"".join(lines))
    damaged = Ledger(home)
    assert damaged.damage is not None
    assert damaged.damage.position == int(sealed[1].stem)
    assert damaged.damage.path == sealed[1]
