"""The checkpoints file: hash-chained records of (position, chain head), and segment seals.

``checkpoints/<log>.jsonl`` holds one JSON object per line. A record names a position and the
chain hash of its line; a *seal* record, written when the ledger rolls to a new segment, also
describes the segment it closes (name, first and last position, size, sha256 of its bytes),
so every later open can tell a sealed segment that still is what it was from one that was
edited, shortened, renamed or replaced, without re-reading it while its file is unchanged.

Records are chained like the log's lines: ``cp = sha256(prev || body)``, ``prev`` being the
previous record's ``cp`` (64 zeros first) and ``body`` the line without ``,"cp":"…"``. A record
removed, reordered or edited breaks the chain. Records written before the chain existed (no
``cp``) are accepted only before the first chained one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from sheratan.store.files import append_durably
from sheratan.store.lines import GENESIS_HASH

_CP_SUFFIX_BYTES = len(b',"cp":"') + 64 + len(b'"}')


class Seal(msgspec.Struct, frozen=True):
    """What a sealed segment was when the ledger rolled past it."""

    name: str
    first: int
    last: int
    size: int
    digest: str  # sha256 of the segment file's bytes, hex


class Checkpoint(msgspec.Struct, kw_only=True, omit_defaults=True):
    pos: int
    hash: str
    ts: str
    reason: str = "manual"
    seal: Seal | None = None
    prev: str | None = None
    cp: str | None = None


_decoder = msgspec.json.Decoder(Checkpoint)
_encoder = msgspec.json.Encoder()


@dataclass
class CheckpointChain:
    """The records of a checkpoints file, and the first problem found in their chain."""

    records: list[Checkpoint] = field(default_factory=list)
    problem: str | None = None
    #: The position of the first chained record: segments starting after it must be sealed.
    chained_from: int | None = None
    head: str = GENESIS_HASH

    @property
    def seals(self) -> dict[str, Seal]:
        return {r.seal.name: r.seal for r in self.records if r.seal is not None}

    @property
    def last(self) -> Checkpoint | None:
        return self.records[-1] if self.records else None


def read_chain(path: Path) -> CheckpointChain:
    """Read and check the records of ``path`` (a missing file is an empty chain).

    An unterminated last line is a checkpoint whose append never finished: it vouches for
    nothing and is left for the next writer to cut off. A record that does not decode, or
    breaks the chain, stops the reading with ``problem`` set.
    """
    chain = CheckpointChain()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return chain
    lines = data.split(b"\n")[:-1]  # the part after the last newline is torn or empty
    for number, line in enumerate(lines, 1):
        where = f"{path.name} line {number}"
        if not line.strip():
            continue
        try:
            record = _decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            chain.problem = f"{where} is not a checkpoint record ({error})"
            return chain
        if record.cp is None:
            if chain.chained_from is not None:
                chain.problem = f"{where} is not chained to the records before it"
                return chain
        else:
            if chain.chained_from is None:
                chain.chained_from = record.pos
            if record.prev != chain.head or _cp_of(chain.head, line) != record.cp:
                chain.problem = f"{where} breaks the checkpoint chain (a record edited or removed)"
                return chain
            chain.head = record.cp
        chain.records.append(record)
    return chain


def append_record(path: Path, chain: CheckpointChain, record: Checkpoint) -> Checkpoint:
    """Chain ``record`` after ``chain`` and append it durably; returns the chained record.

    A torn last line (an append cut short by a crash) is cut off first: it vouched for
    nothing. Callers hold the log's exclusive lock, so no other writer appends meanwhile.
    """
    _cut_torn_line(path)
    body = _encoder.encode(msgspec.structs.replace(record, prev=chain.head, cp=None))
    cp = _chain_hash(chain.head, body)
    line = body[:-1] + b',"cp":"' + cp.encode() + b'"}'
    append_durably(path, line + b"\n")
    chained = _decoder.decode(line)
    chain.records.append(chained)
    chain.head = cp
    if chain.chained_from is None:
        chain.chained_from = chained.pos
    return chained


def _cp_of(prev: str, line: bytes) -> str:
    """The ``cp`` a stored record line should carry: the hash of the line without it."""
    return _chain_hash(prev, line[:-_CP_SUFFIX_BYTES] + b"}")


def _chain_hash(prev: str, body: bytes) -> str:
    return hashlib.sha256(prev.encode() + body).hexdigest()


def _cut_torn_line(path: Path) -> None:
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with path.open("rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        handle.truncate(handle.read().rfind(b"\n") + 1)
        handle.flush()
        os.fsync(handle.fileno())
