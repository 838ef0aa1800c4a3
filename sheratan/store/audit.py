"""Full verification of a log against its hash chain and checkpoints, from the files alone.

It trusts nothing cached: it reads every segment line by line, recomputes every hash, checks
that positions are gapless and that every checkpoint's (position, hash) is still in the
chain. The first problem found is named by position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from sheratan.store.checkpoints import read_chain
from sheratan.store.integrity import SEGMENT_FILE
from sheratan.store.lines import GENESIS_HASH, LinePointer, compute_hash, pointer_decoder


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
) -> Verification:
    """Verify every line of the log in ``log_dir``; stop at the first bad position."""
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
        with path.open("rb") as handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    return _fail(result, expected, f"unterminated line at the end of {path.name}")
                line = raw[:-1]
                result.events += 1
                try:
                    pointer: LinePointer = pointer_decoder.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError) as error:
                    return _fail(result, expected, f"not a valid ledger line: {error}")
                if pointer.pos != expected:
                    return _fail(result, expected, f"found position {pointer.pos}: a gap")
                if pointer.prev != head:
                    return _fail(result, expected, "prev does not match the previous hash")
                if compute_hash(head, line) != pointer.hash:
                    return _fail(result, expected, "hash does not match the line's content")
                if expected in expected_hash_at and expected_hash_at[expected] != pointer.hash:
                    return _fail(result, expected, "differs from the checkpoint's hash")
                head = pointer.hash
                result.verified += 1
                expected += 1
                if progress is not None and result.verified % 100_000 == 0:
                    progress(result.verified)
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


def _fail(result: Verification, position: int, problem: str) -> Verification:
    result.first_bad_position = position
    result.problem = f"position {position}: {problem}"
    return result
