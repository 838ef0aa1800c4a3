"""Provable history for a home: signed checkpoints, proofs from the log, and their check.

``checkpoints/signed.jsonl`` holds one signed checkpoint per line (appended with fsync; the
only write this module makes outside ``merkle/``). Proofs are computed from the tree cache
(``sheratan.audit.tree``) and checked against the signed root before they are handed out, so
a damaged cache is rebuilt (said once on stderr) and never yields a wrong proof. ``verify``
trusts nothing cached: it reads the segment files and recomputes every tree head it checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from sheratan.audit import checkpoint as checkpoints
from sheratan.audit import merkle, signing
from sheratan.audit.checkpoint import CheckpointFormatError, SignedCheckpoint
from sheratan.audit.proofs import FORMAT, ConsistencyProof, InclusionProof
from sheratan.audit.tree import TreeCache, chain_hash
from sheratan.home import Home
from sheratan.store.files import UtcClock, append_durably, write_durably

SIGNED_FILE = "signed.jsonl"
#: Segment bytes read per step by ``verify``'s tree-head pass.
READ_CHUNK_BYTES = 4 * 1024 * 1024

Warn = Callable[[str], None]
T = TypeVar("T")


class AuditInputError(ValueError):
    """Bad input to an audit command (no signed checkpoint, a position outside the tree)."""


class LogMismatchError(Exception):
    """The log is not the one a signed checkpoint vouches for: a failed check, exit 1."""


def signed_path(home: Path) -> Path:
    return home / "checkpoints" / SIGNED_FILE


def keygen(out_dir: Path, home: Path, *, force: bool) -> dict[str, str]:
    private, public = signing.generate(out_dir, home=home, force=force)
    key_id = signing.key_id(signing.load_public(public))
    return {"private_key": str(private), "public_key": str(public), "key_id": key_id}


def record_checkpoint(
    home: Home, key_file: Path, export: Path | None, warn: Warn
) -> SignedCheckpoint:
    """Sign the tree head of lines 1..n (n: the last position now) and record it."""
    private = signing.load_private(key_file)
    ledger = home.ledger
    size = ledger.last_position()
    if size == 0:
        raise AuditInputError("the log is empty: there is nothing to sign yet")
    previous = _latest_signed(home.path)

    def head_of(tree: TreeCache) -> bytes | None:
        fits = previous is None or _extends(tree, previous, size)
        return merkle.root(tree, size) if fits else None

    failure = _mismatch(previous, "signed.jsonl (latest)") if previous else ""
    root = _from_cache(home, size, head_of, warn, failure)
    head = checkpoints.sign(
        private,
        log=_log_id(ledger.hash_at(1)),
        tree_size=size,
        root=root,
        chain_head=_log_id(ledger.hash_at(size)),
        ts=UtcClock().now(),
    )
    append_durably(signed_path(home.path), head.encode() + b"\n")
    if export is not None:
        write_durably(export, head.encode() + b"\n")
    return head


def prove(home: Home, position: int, checkpoint_file: Path | None, warn: Warn) -> InclusionProof:
    """An inclusion proof of the line at ``position`` against a signed checkpoint."""
    head = _checkpoint_for(home, checkpoint_file)
    if not 1 <= position <= head.tree_size:
        raise AuditInputError(
            f"position {position} is not in the signed tree of {head.tree_size} events"
        )
    ledger = home.ledger
    line = next(iter(ledger.lines(position, position)))[1]
    leaf = merkle.leaf_hash(line)

    def make(tree: TreeCache) -> list[bytes] | None:
        path = merkle.inclusion_path(tree, position - 1, head.tree_size)
        holds = merkle.verify_inclusion(leaf, position - 1, head.tree_size, path, head.root_bytes())
        return path if holds else None

    path = _from_cache(home, head.tree_size, make, warn, _mismatch(head, "the checkpoint"))
    return InclusionProof(
        format=FORMAT,
        position=position,
        leaf_index=position - 1,
        line=line.decode(),
        path=[node.hex() for node in path],
        checkpoint=head,
    )


def consistency(
    home: Home, first_file: Path, second_file: Path, public_key: Path | None, warn: Warn
) -> ConsistencyProof:
    """A proof that the checkpoint in ``second_file`` extends the one in ``first_file``."""
    first, second = _read_checkpoint(first_file), _read_checkpoint(second_file)
    if public_key is not None:
        public = signing.load_public(public_key)
        for name, head in (("--from", first), ("--to", second)):
            wrong = checkpoints.problem(head, public)
            if wrong is not None:
                raise LogMismatchError(f"{name} checkpoint: {wrong}")
    if first.tree_size > second.tree_size:
        raise AuditInputError(
            f"--from has tree size {first.tree_size}, larger than --to's {second.tree_size}"
        )
    _check_log(home, first)
    _check_log(home, second)

    def make(tree: TreeCache) -> list[bytes] | None:
        holds = merkle.root(tree, first.tree_size) == first.root_bytes()
        path = merkle.consistency_path(tree, first.tree_size, second.tree_size)
        holds = holds and merkle.verify_consistency(
            first.tree_size, second.tree_size, first.root_bytes(), second.root_bytes(), path
        )
        return path if holds else None

    path = _from_cache(home, second.tree_size, make, warn, _mismatch(second, "--to"))
    return ConsistencyProof(
        format=FORMAT, path=[node.hex() for node in path], first=first, second=second
    )


# ------------------------------------------------------------------ verify


@dataclass
class SignedVerification:
    """The outcome of checking signed checkpoints against the log's files."""

    events: int = 0
    checked: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checked)

    @property
    def problem(self) -> str | None:
        return next((c["problem"] for c in self.checked if not c["ok"]), None)

    def summary(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "signed_checkpoints": self.checked}


def verify_signed(home: Path, public_key: Path, checkpoint_file: Path | None) -> SignedVerification:
    """Every signed checkpoint of the home (and ``checkpoint_file``) against the log's files.

    One pass over the segments recomputes the tree head at every signed size. A checkpoint
    fails when its signature or key does not hold, when it names another log, when the log
    is shorter than its tree, or when the head differs: then the positions where the log
    stopped being the signed one are named, bounded below by the largest signed size that
    still matches.
    """
    public = signing.load_public(public_key)
    heads = [(f"{SIGNED_FILE} line {i}", h) for i, h in enumerate(_read_signed(home), 1)]
    if checkpoint_file is not None:
        heads.append((str(checkpoint_file), _read_checkpoint(checkpoint_file)))
    result = SignedVerification()
    signed_ok = [(name, head) for name, head in heads if checkpoints.problem(head, public) is None]
    sizes = {head.tree_size for _, head in signed_ok}
    roots, chain, first_hash, result.events = _heads_at(home / "events", sizes)
    matching = {
        head.tree_size
        for _, head in signed_ok
        if roots.get(head.tree_size) == head.root_bytes() and head.log == first_hash
    }
    for name, head in heads:
        entry = {"checkpoint": name, "tree_size": head.tree_size, "ts": head.ts, "ok": True}
        wrong = checkpoints.problem(head, public)
        if wrong is None:
            wrong = _log_problem(head, roots, chain, first_hash, result.events, matching)
        if wrong is not None:
            entry.update(ok=False, problem=f"signed checkpoint {name}: {wrong}")
        result.checked.append(entry)
    return result


def _log_problem(
    head: SignedCheckpoint,
    roots: dict[int, bytes],
    chain: dict[int, str],
    first_hash: str,
    events: int,
    matching: set[int],
) -> str | None:
    if head.tree_size > events:
        return f"the log ends at {events}, the checkpoint vouches for {head.tree_size}"
    if head.log != first_hash:
        return "names another log (or position 1 changed): the log is not the signed one"
    if roots[head.tree_size] != head.root_bytes():
        below = max((size for size in matching if size < head.tree_size), default=0)
        where = f"{below + 1}..{head.tree_size}" if below else f"1..{head.tree_size}"
        return (
            f"the log's tree head at {head.tree_size} is not the signed root: "
            f"the log was changed at a position in {where}"
        )
    if chain[head.tree_size] != head.chain_head:
        return f"the chain hash at {head.tree_size} is not the signed chain head"
    return None


def _heads_at(log_dir: Path, sizes: set[int]) -> tuple[dict[int, bytes], dict[int, str], str, int]:
    """Tree heads and chain hashes at ``sizes``, the first line's hash, and the line count."""
    accumulator = merkle.RootAccumulator()
    roots: dict[int, bytes] = {}
    chain: dict[int, str] = {}
    first_hash = ""
    last = max(sizes, default=0)
    for line in _file_lines(log_dir):
        accumulator.add(merkle.leaf_hash(line))
        size = accumulator.size
        if size == 1:
            first_hash = chain_hash(line)
        if size in sizes:
            roots[size] = accumulator.root()
            chain[size] = chain_hash(line)
        if size >= last:
            break
    events = accumulator.size if accumulator.size < last else _count_lines(log_dir)
    return roots, chain, first_hash, events


def _file_lines(log_dir: Path) -> Iterator[bytes]:
    """Complete lines of every segment in order, straight from the files (no index)."""
    for path in sorted(log_dir.glob("*.jsonl")):
        with path.open("rb") as handle:
            rest = b""
            while chunk := handle.read(READ_CHUNK_BYTES):
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                yield from lines


def _count_lines(log_dir: Path) -> int:
    total = 0
    for path in sorted(log_dir.glob("*.jsonl")):
        with path.open("rb") as handle:
            while chunk := handle.read(READ_CHUNK_BYTES):
                total += chunk.count(b"\n")
    return total


# ----------------------------------------------------------------- helpers


def _from_cache(
    home: Home, size: int, make: Callable[[TreeCache], T | None], warn: Warn, failure: str
) -> T:
    """``make``'s answer from the tree cache of ``size`` leaves, or LogMismatchError.

    ``make`` checks what it computes (against a signed root) and answers None when that
    fails; then the cache is rebuilt from the log once and asked again. A rebuilt cache is
    said once on stderr, only with an answer that holds: if the rebuilt cache fails too, the
    log is not the signed one, and that is the one line to say.
    """
    tree = TreeCache(home.path / "merkle")
    try:
        kept = tree.sync(size, home.ledger.hash_at, home.ledger.lines)
        out = make(tree)
        if out is None and kept:
            tree.rebuild(size, home.ledger.lines)
            kept = False
            out = make(tree)
    finally:
        tree.close()
    if out is None:
        raise LogMismatchError(failure)
    if not kept:
        warn("merkle tree cache did not match the log: rebuilt from the log")
    return out


def _mismatch(head: SignedCheckpoint, name: str) -> str:
    return (
        f"the log is not the one signed in {name} at tree size {head.tree_size}: "
        f"run `sheratan audit verify --pubkey PUB` to see where it differs"
    )


def _extends(tree: TreeCache, previous: SignedCheckpoint, size: int) -> bool:
    """Does the cache's tree of ``size`` extend the previous signed head? (Cache check.)"""
    if previous.tree_size > size:
        return False
    path = merkle.consistency_path(tree, previous.tree_size, size)
    return (
        merkle.verify_consistency(
            previous.tree_size, size, previous.root_bytes(), merkle.root(tree, size), path
        )
        and merkle.root(tree, previous.tree_size) == previous.root_bytes()
    )


def _checkpoint_for(home: Home, checkpoint_file: Path | None) -> SignedCheckpoint:
    if checkpoint_file is not None:
        head = _read_checkpoint(checkpoint_file)
    else:
        latest = _latest_signed(home.path)
        if latest is None:
            raise AuditInputError(
                "no signed checkpoint in this home: run `sheratan audit checkpoint --sign KEY`"
            )
        head = latest
    _check_log(home, head)
    return head


def _check_log(home: Home, head: SignedCheckpoint) -> None:
    """The checkpoint is of this log and the log reaches its tree size."""
    if head.log != _log_id(home.ledger.hash_at(1)):
        raise LogMismatchError(
            f"the checkpoint of tree size {head.tree_size} names log {head.log[:16]}…, not this one"
        )
    last = home.ledger.last_position()
    if head.tree_size > last:
        raise LogMismatchError(
            f"the log ends at {last}, the checkpoint vouches for {head.tree_size}"
        )


def _read_checkpoint(path: Path) -> SignedCheckpoint:
    try:
        return checkpoints.decode(path.read_bytes().strip())
    except OSError as error:
        raise AuditInputError(f"cannot read {path}: {error.strerror}") from None
    except CheckpointFormatError as error:
        raise AuditInputError(f"{path}: {error}") from None


def _read_signed(home: Path) -> list[SignedCheckpoint]:
    path = signed_path(home)
    if not path.exists():
        return []
    out = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if line.strip():
            try:
                out.append(checkpoints.decode(line))
            except CheckpointFormatError as error:
                raise LogMismatchError(f"{path} line {number}: {error}") from None
    return out


def latest_checkpoint(home: Path) -> dict[str, Any] | None:
    """The newest signed checkpoint of the home as plain data (None before the first)."""
    latest = _latest_signed(home)
    return None if latest is None else msgspec.to_builtins(latest)


def _latest_signed(home: Path) -> SignedCheckpoint | None:
    signed = _read_signed(home)
    return signed[-1] if signed else None


def _log_id(chain_hash: str | None) -> str:
    if chain_hash is None:
        raise AuditInputError("the log is empty")
    return chain_hash
