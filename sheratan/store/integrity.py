"""What every open of a log checks before anything reads or extends it, and how damage is named.

The files alone decide: the segments in ``events/`` must be exactly the sealed ones the
checkpoint chain describes (same names, first and last positions, sizes and sha256 digests),
followed by at most one active segment. A sealed segment whose file is unchanged since it was
last verified (same size, inode, change and modification time, as the sidecar remembers) is
not read again; any other is digested in full. The chain of the active segment is checked by
the ledger's scan from the last trusted position.

Damage is never repaired here: it is described (first bad position, an existing file, what is
wrong) so that writers refuse to extend it and readers refuse to answer past it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sheratan.store.checkpoints import Checkpoint, CheckpointChain
from sheratan.store.files import file_digest
from sheratan.store.lines import GENESIS_HASH, check_line

SEGMENT_FILE = re.compile(r"^\d{20}\.jsonl$")

#: What the sidecar remembers of a verified segment file: (size, inode, ctime_ns, mtime_ns).
FileStamp = tuple[int, int, int, int]


@dataclass(frozen=True)
class Damage:
    """The first bad position of a log, the file where it shows, and what is wrong."""

    position: int
    path: Path
    problem: str
    offset: int | None = None

    def message(self) -> str:
        where = str(self.path) + (f" at byte {self.offset}" if self.offset is not None else "")
        return (
            f"the log is damaged at position {self.position} ({where}): {self.problem}. "
            f"It accepts no appends and answers nothing past position {self.position - 1} "
            f"until repaired: `sheratan audit verify` shows the damage; restore the file from "
            f"a backup (or read the intact prefix with --up-to-damage)"
        )


def stamp(path: Path) -> FileStamp:
    st = os.stat(path)
    return (st.st_size, st.st_ino, st.st_ctime_ns, st.st_mtime_ns)


def stamp_if_exists(path: Path) -> FileStamp | None:
    try:
        return stamp(path)
    except FileNotFoundError:
        return None


@dataclass
class Layout:
    """The segment files of a log as the checkpoint chain explains them."""

    #: (first position, path) of every segment, in order; the last one is the active segment.
    segments: list[tuple[int, Path]] = field(default_factory=list)
    #: The chain hash before the active segment's first line.
    active_prev: str = GENESIS_HASH
    #: Sealed segments verified now (digest or chain), to be remembered by the sidecar.
    verified: dict[int, FileStamp] = field(default_factory=dict)
    damage: Damage | None = None


def check_layout(log_dir: Path, chain: CheckpointChain, remembered: dict[int, FileStamp]) -> Layout:
    """Hold the files of ``log_dir`` to the seals of ``chain``; stop at the first damage.

    ``remembered`` maps a segment's first position to the stamp its file had when it was
    last verified: such a file is trusted without being read.
    """
    layout = Layout()
    seals = {r.seal.name: r for r in chain.records if r.seal is not None}
    files = sorted(p for p in log_dir.iterdir() if not p.name.startswith("."))
    expected, prev = 1, GENESIS_HASH
    for at, path in enumerate(files):
        if not _named(path):
            layout.damage = _not_a_segment(path, expected)
            return layout
        first = int(path.stem)
        if first != expected:
            layout.damage = _misplaced(log_dir, path, first, expected, seals)
            return layout
        layout.segments.append((first, path))
        record = seals.get(path.name)
        is_last = at == len(files) - 1
        if record is None:
            if is_last or (chain.chained_from is not None and first > chain.chained_from):
                # The active segment: the ledger's scan checks its chain, and names whatever
                # file follows it (no writer starts a segment without sealing this one).
                for later in files[at + 1 :]:
                    if not _named(later):
                        layout.damage = _not_a_segment(later, first)
                        return layout
                    layout.segments.append((int(later.stem), later))
                layout.active_prev = prev
                return layout
            damage, expected, prev = _check_unsealed(path, first, prev)
        else:
            damage = _check_sealed(path, record, prev, remembered, layout)
            expected, prev = record.pos + 1, record.hash
        if damage is not None:
            layout.damage = damage
            return layout
    if not files:
        layout.segments.append((1, log_dir / f"{1:020d}.jsonl"))
    missing = seals.get(f"{expected:020d}.jsonl")
    if missing is not None and layout.segments[-1][0] != expected:
        layout.damage = _missing(log_dir, missing)
    layout.active_prev = prev
    return layout


def _not_a_segment(path: Path, position: int) -> Damage:
    return Damage(
        position,
        path,
        "it is not a segment file (segments are files named by their first position, "
        "20 digits, .jsonl)",
    )


def _named(path: Path) -> bool:
    return bool(SEGMENT_FILE.match(path.name)) and path.is_file()


def _check_sealed(
    path: Path,
    record: Checkpoint,
    prev: str,
    remembered: dict[int, FileStamp],
    layout: Layout,
) -> Damage | None:
    seal = record.seal
    assert seal is not None
    now = stamp(path)
    if remembered.get(seal.first) == now:
        return None
    if now[0] != seal.size:
        bad = first_bad_line(path, seal.first, prev)
        position = bad.position if bad is not None else seal.first + _count_lines(path)
        return Damage(
            position,
            path,
            f"the sealed segment holds {now[0]} bytes where its seal recorded {seal.size} "
            f"(positions {seal.first}..{seal.last}): it was shortened or extended",
        )
    if file_digest(path) != seal.digest:
        bad = first_bad_line(path, seal.first, prev)
        if bad is not None:
            return bad
        return Damage(
            seal.first,
            path,
            "the sealed segment's bytes differ from its seal (sha256), though its lines chain: "
            "it was rewritten and re-chained",
        )
    layout.verified[seal.first] = now
    return None


def _check_unsealed(path: Path, first: int, prev: str) -> tuple[Damage | None, int, str]:
    """A segment sealed before seal records existed: its chain is all there is to check
    (the next writer seals it, so this full read happens until then only)."""
    bad, last, head = scan_chain(path, first, prev)
    return bad, last + 1, head


def first_bad_line(path: Path, first: int, prev: str, size: int | None = None) -> Damage | None:
    """The first line of segment ``path`` (starting at ``first`` after ``prev``) that fails."""
    return scan_chain(path, first, prev, size)[0]


def scan_chain(
    path: Path, first: int, prev: str, size: int | None = None
) -> tuple[Damage | None, int, str]:
    """Check every line of ``path`` (up to ``size`` bytes) against the chain.

    Returns the damage found (or None), the last good position and its hash. An unterminated
    last line is damage here: callers use this for sealed segments, which end on a newline.
    """
    expected, head, offset = first, prev, 0
    data = path.read_bytes() if size is None else path.read_bytes()[:size]
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            return Damage(expected, path, "an unterminated line", offset), expected - 1, head
        problem, pointer = check_line(raw[:-1], expected, head)
        if problem:
            return Damage(expected, path, problem, offset), expected - 1, head
        head = pointer.hash
        expected += 1
        offset += len(raw)
    return None, expected - 1, head


def _count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n")


def _misplaced(
    log_dir: Path, path: Path, first: int, expected: int, seals: dict[str, Checkpoint]
) -> Damage:
    missing = seals.get(f"{expected:020d}.jsonl")
    if missing is not None and first > expected:
        return _missing(log_dir, missing)
    return Damage(
        expected,
        path,
        f"the next segment should start at position {expected}, but this file is named "
        f"for position {first} (a segment was added, renamed or removed)",
    )


def _missing(log_dir: Path, record: Checkpoint) -> Damage:
    seal = record.seal
    assert seal is not None
    return Damage(
        seal.first,
        log_dir,
        f"segment {seal.name} (sealed with positions {seal.first}..{seal.last}) is missing",
    )
