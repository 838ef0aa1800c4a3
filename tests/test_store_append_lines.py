"""``Ledger.append_lines``: lines rendered elsewhere (the exporter, an import) join a log only
when each is the next position, chains on the head, carries its own hash, brings a new
(stream, version) and the last closes its save; otherwise none is written."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from store_helpers import all_lines, rechain, save_of, segments, verify_home

from sheratan.store.ledger import Ledger, LineRefusedError


def source_lines(tmp_path: Path) -> list[bytes]:
    """The lines of a small log of three saves (positions 1..6), with their newlines."""
    ledger = Ledger(tmp_path / "source")
    for n in (1, 2, 3):
        ledger.append(save_of(uuid.uuid4(), n))
    ledger.close()
    return [line + b"\n" for line in all_lines(tmp_path / "source")]


def test_lines_appended_elsewhere_give_the_same_log(tmp_path: Path) -> None:
    lines = source_lines(tmp_path)
    copy = Ledger(tmp_path / "copy")
    assert copy.append_lines(lines[:3]) == 3
    assert copy.append_lines(lines[3:]) == 6
    copy.close()
    assert [line + b"\n" for line in all_lines(tmp_path / "copy")] == lines
    assert verify_home(tmp_path / "copy").verified == 6
    reopened = Ledger(tmp_path / "copy")  # the index, streams and head as a scan finds them
    assert reopened.damage is None and reopened.last_position() == 6
    assert reopened.hash_at(6) == Ledger(tmp_path / "source").hash_at(6)


def _broken(lines: list[bytes], how: str) -> list[bytes]:
    if how == "position":
        return lines[1:]
    if how == "hash":
        return [lines[0].replace(b'"v":1', b'"v":7'), *lines[1:]]
    if how == "save":
        return lines[:2]  # the save of positions 2..3 without its last line
    if how == "newline":
        return [lines[0].rstrip(b"\n")]
    # a duplicate (stream, version): position 2 again as position 4, chained properly
    plain = [line.rstrip(b"\n") for line in lines[:3]]
    again = plain[1].replace(b'"pos":2,', b'"pos":4,').replace(b'"end":3,', b'"end":4,')
    return [line + b"\n" for line in rechain([*plain, again], 3)]


@pytest.mark.parametrize(
    ("how", "needle"),
    [
        ("position", "line for position 1: position 2 where 1 was expected"),
        ("hash", "line for position 1: its hash does not match its content"),
        ("save", "line for position 2: its save ends at 3, not with it"),
        ("newline", "line for position 1: it does not end with a newline"),
        ("duplicate", "line for position 4: stream"),
    ],
)
def test_a_line_that_cannot_follow_refuses_them_all(tmp_path: Path, how: str, needle: str) -> None:
    lines = _broken(source_lines(tmp_path), how)
    copy = Ledger(tmp_path / "copy")
    with pytest.raises(LineRefusedError, match=needle):
        copy.append_lines(lines)
    assert copy.last_position() == 0
    assert all(path.stat().st_size == 0 for path in segments(tmp_path / "copy"))
