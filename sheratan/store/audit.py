"""Full verification of a log against its hash chain and checkpoints, from the files alone.

It trusts nothing cached: it reads every segment line by line, recomputes every hash, checks
that positions are gapless and that every checkpoint's (position, hash) is still in the
chain. The first problem found is named by position.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from sheratan.store.checkpoints import read_chain
from sheratan.store.integrity import SEGMENT_FILE
from sheratan.store.lines import (
    GENESIS_HASH,
    HASH_SUFFIX_BYTES,
    LinePointer,
    compute_hash,
    pointer_decoder,
)

#: verify reads a segment this many bytes at a time and checks the whole lines in it at once.
VERIFY_CHUNK_BYTES = 4 * 1024 * 1024

_batch_decoder = msgspec.json.Decoder(list[LinePointer])
_sha256 = hashlib.sha256
_pos_of = operator.attrgetter("pos")
_hash_of = operator.attrgetter("hash")
_prev_of = operator.attrgetter("prev")
_end_of = operator.attrgetter("end")


@dataclass
class Verification:
    """The outcome of ``verify``: how many events held, and the first problem if any."""

    events: int = 0
    verified: int = 0
    head: str = GENESIS_HASH
    checkpoints: int = 0
    first_bad_position: int | None = None
    problem: str | None = None
    segments: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> dict[str, Any]:
        """The outcome as plain data (``audit verify --json`` and the audit report)."""
        return {
            "ok": self.ok,
            "events": self.events,
            "verified": self.verified,
            "head": self.head,
            "checkpoints": self.checkpoints,
            "first_bad_position": self.first_bad_position,
            "problem": self.problem,
        }


def verify(
    log_dir: Path,
    checkpoints_path: Path,
    progress: Callable[[int], None] | None = None,
    committed: tuple[Path, int] | None = None,
) -> Verification:
    """Verify every line of the log in ``log_dir``; stop at the first bad position.

    ``committed`` (the active segment and the size of its committed prefix, as the ledger
    sees it) keeps a verification that runs beside a writer from reading a save still being
    written: the log is verified up to there, and a torn tail is left for the next writer.
    """
    result = Verification()
    chain = read_chain(checkpoints_path)
    checkpoints = chain.records
    result.checkpoints = len(checkpoints)
    if chain.problem is not None:
        after = chain.last.pos + 1 if chain.last else 1
        return _fail(result, after, chain.problem)
    expected_hash_at = {c.pos: c.hash for c in checkpoints}
    seals = chain.seals
    head = GENESIS_HASH
    expected = 1
    for path in sorted(p for p in log_dir.iterdir() if not p.name.startswith(".")):
        result.segments.append(path.name)
        if not SEGMENT_FILE.match(path.name):
            return _fail(result, expected, f"{path.name} is not a segment file")
        if int(path.stem) != expected:
            return _fail(result, expected, f"segment {path.name} should start at {expected}")
        limit = committed[1] if committed is not None and committed[0] == path else None
        checked = _verify_segment(path, limit, expected, head, expected_hash_at, result, progress)
        if checked is None:
            return result
        expected, head = checked
        if limit is not None:
            break  # what follows the committed cut was written after it
        seal = seals.get(path.name)
        if seal is not None and (seal.last != expected - 1 or seal.size != path.stat().st_size):
            return _fail(
                result,
                min(expected, seal.last + 1),
                f"segment {path.name} ends at {expected - 1} with {path.stat().st_size} bytes, "
                f"but was sealed at {seal.last} with {seal.size}",
            )
    missing = seals.get(f"{expected:020d}.jsonl")
    if missing is not None:
        return _fail(result, expected, f"sealed segment {missing.name} is missing")
    result.head = head
    last = expected - 1
    beyond = [c for c in checkpoints if c.pos > last]
    if beyond:
        return _fail(
            result, last + 1, f"log ends at {last} but a checkpoint vouches for {beyond[-1].pos}"
        )
    return result


def _verify_segment(
    path: Path,
    limit: int | None,
    expected: int,
    head: str,
    expected_hash_at: dict[int, str],
    result: Verification,
    progress: Callable[[int], None] | None,
) -> tuple[int, str] | None:
    """Check one segment in batches of lines; (next position, head), or None on a failure.

    A batch is decoded by one msgspec call and checked with list comparisons, so Python
    touches each line once, to hash it. Only a batch that fails is walked line by line, to
    name its first bad position with the reason.
    """
    remaining = limit if limit is not None else path.stat().st_size
    with path.open("rb") as handle:
        carry = b""
        while remaining > 0 and (chunk := handle.read(min(VERIFY_CHUNK_BYTES, remaining))):
            remaining -= len(chunk)
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            if not cut:
                continue
            lines = data[: cut - 1].split(b"\n")
            hashes = _batch_hashes(lines, expected, head, expected_hash_at)
            if hashes is None:
                _walk(lines, expected, head, expected_hash_at, result)
                return None
            result.events += len(lines)
            result.verified += len(lines)
            if progress is not None and (result.verified // 100_000) != (
                (result.verified - len(lines)) // 100_000
            ):
                progress(result.verified)
            expected += len(lines)
            head = hashes[-1]
        if carry:
            result.events += 1
            _fail(result, expected, f"unterminated line at the end of {path.name}")
            return None
    return expected, head


def _batch_hashes(
    lines: list[bytes], first: int, head: str, expected_hash_at: dict[int, str]
) -> list[str] | None:
    """The lines' hashes if every line of the batch holds, else None."""
    try:
        pointers = _batch_decoder.decode(b"[" + b",".join(lines) + b"]")
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    positions = list(map(_pos_of, pointers))
    if positions != list(range(first, first + len(lines))):
        return None
    hashes = list(map(_hash_of, pointers))
    prevs = list(map(_prev_of, pointers))
    if prevs[0] != head or prevs[1:] != hashes[:-1]:
        return None
    if any(map(operator.lt, map(_end_of, pointers), positions)):
        return None
    computed = [
        _sha256(prev.encode() + line[:-HASH_SUFFIX_BYTES] + b"}").hexdigest()
        for prev, line in zip(prevs, lines, strict=True)
    ]
    if computed != hashes:
        return None
    last = first + len(lines) - 1
    for position, vouched in expected_hash_at.items():
        if first <= position <= last and hashes[position - first] != vouched:
            return None
    return hashes


def _walk(
    lines: list[bytes],
    expected: int,
    head: str,
    expected_hash_at: dict[int, str],
    result: Verification,
) -> None:
    """Check a failed batch line by line and record its first bad position."""
    for line in lines:
        result.events += 1
        try:
            pointer: LinePointer = pointer_decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            _fail(result, expected, f"not a valid ledger line: {error}")
            return
        if pointer.pos != expected:
            _fail(result, expected, f"found position {pointer.pos}: a gap")
            return
        if pointer.prev != head:
            _fail(result, expected, "prev does not match the previous hash")
            return
        if compute_hash(head, line) != pointer.hash:
            _fail(result, expected, "hash does not match the line's content")
            return
        if pointer.end < pointer.pos:
            _fail(result, expected, f"its save ends at {pointer.end}, before the line itself")
            return
        if expected in expected_hash_at and expected_hash_at[expected] != pointer.hash:
            _fail(result, expected, "differs from the checkpoint's hash")
            return
        head = pointer.hash
        result.verified += 1
        expected += 1
    msg = "the batch failed but no line did"  # the two checks disagree: a bug, say so
    raise AssertionError(msg)


def _fail(result: Verification, position: int, problem: str) -> Verification:
    result.first_bad_position = position
    result.problem = f"position {position}: {problem}"
    return result
