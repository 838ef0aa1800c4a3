"""The persisted Merkle tree cache under ``<home>/merkle/``: proofs in O(log n) reads.

``level-KK.bin`` holds the 32-byte hashes of the perfect subtrees of ``2**KK`` leaves, by
index (level 00: the leaf hashes by position - 1); ``state.json`` says how many leaves the
files hold and the chain hash of the last one. Non-perfect right edges are folded from
stored perfect subtrees (``merkle.subtree_hash``), so a proof reads about log2(n)**2 hashes.

A cache, never the truth: it is extended from the ledger's own lines, dropped and rebuilt when
the chain hash it recorded is no longer the log's, and every proof made from it is checked
against the signed root before it is handed out (``sheratan.audit.service``). It writes only
under ``merkle/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec

from sheratan.audit.merkle import HASH_BYTES, leaf_hash, node_hash
from sheratan.store.files import FileLock, write_durably

#: Leaves hashed and written per step while the cache grows (bounded memory).
BATCH_LEAVES = 65_536
#: Deeper than any log: level 63 holds subtrees of 2**63 leaves.
MAX_LEVELS = 64


class TreeState(msgspec.Struct):
    size: int = 0
    head: str = ""


class TreeCache:
    """Level files of perfect-subtree hashes; ``perfect`` serves ``merkle``'s proof code."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(self.dir / "merkle.lock")
        self._fds: dict[int, int] = {}
        self.state = self._load_state()

    # ------------------------------------------------------------------ reads

    @property
    def size(self) -> int:
        return self.state.size

    def perfect(self, level: int, index: int) -> bytes:
        if (index + 1) << level > self.state.size:
            raise IndexError(f"no perfect subtree {index} at level {level} in {self.state.size}")
        data = os.pread(self._fd(level), HASH_BYTES, index * HASH_BYTES)
        if len(data) != HASH_BYTES:
            raise OSError(f"{self._path(level)} is shorter than its state says")
        return data

    # ----------------------------------------------------------------- writes

    def sync(
        self,
        size: int,
        head_at: Callable[[int], str | None],
        lines: Callable[[int, int], Iterable[tuple[int, bytes]]],
    ) -> bool:
        """Hold at least ``size`` leaves of the log; False when the old cache was dropped.

        ``head_at(pos)`` is the log's chain hash at a position; ``lines(first, last)`` yields
        its lines. The cache is kept only if the log still has the line it ended on.
        """
        with self._lock.held():
            self.state = self._load_state()
            kept = self.state.size == 0 or head_at(self.state.size) == self.state.head
            if not kept:
                self._reset()
            if self.state.size < size:
                self._extend(size, lines)
        return kept

    def rebuild(
        self,
        size: int,
        lines: Callable[[int, int], Iterable[tuple[int, bytes]]],
    ) -> None:
        with self._lock.held():
            self._reset()
            self._extend(size, lines)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._lock.close()

    def _extend(self, size: int, lines: Callable[[int, int], Iterable[tuple[int, bytes]]]) -> None:
        """Append leaves state.size+1..size batch by batch, then the subtrees they complete."""
        count, head = self.state.size, self.state.head
        batch: list[bytes] = []
        for pos, line in lines(count + 1, size):
            if pos != count + len(batch) + 1:
                raise OSError(f"the log skipped from {count + len(batch)} to {pos}")
            batch.append(leaf_hash(line))
            if len(batch) == BATCH_LEAVES or pos == size:
                head = chain_hash(line)
                count = self._append_leaves(count, batch)
                batch = []
        if batch:  # the log ended before ``size``
            head = ""
            count = self._append_leaves(count, batch)
        if count != self.state.size:
            for fd in self._fds.values():
                os.fsync(fd)
            if not head:
                raise OSError(f"the log ends at {count}, before {size}")
            self.state = TreeState(count, head)
            write_durably(self.dir / "state.json", msgspec.json.encode(self.state))

    def _append_leaves(self, count: int, leaves: list[bytes]) -> int:
        os.pwrite(self._fd(0), b"".join(leaves), count * HASH_BYTES)
        count += len(leaves)
        level = 0
        while count >> (level + 1):
            have = _entries(self._fd(level + 1))
            want = count >> (level + 1)
            if have < want:
                pair = 2 * HASH_BYTES
                children = os.pread(self._fd(level), (want - have) * pair, have * pair)
                parents = [
                    node_hash(children[i : i + HASH_BYTES], children[i + HASH_BYTES : i + pair])
                    for i in range(0, len(children), pair)
                ]
                os.pwrite(self._fd(level + 1), b"".join(parents), have * HASH_BYTES)
            level += 1
        return count

    # ---------------------------------------------------------------- helpers

    def _load_state(self) -> TreeState:
        """The recorded state, with level files cut back to it (a crash may leave more)."""
        try:
            state = msgspec.json.decode((self.dir / "state.json").read_bytes(), type=TreeState)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            state = TreeState()
        for level in range(MAX_LEVELS):
            want = (state.size >> level) * HASH_BYTES
            fd = self._fd(level) if self._path(level).exists() or want else None
            if fd is None:
                break
            size = os.fstat(fd).st_size
            if size < want:  # a level file lost its bytes: start again
                return self._reset()
            if size > want:
                os.ftruncate(fd, want)
        return state

    def _reset(self) -> TreeState:
        for level in range(MAX_LEVELS):
            if level in self._fds or self._path(level).exists():
                os.ftruncate(self._fd(level), 0)
        self.state = TreeState()
        write_durably(self.dir / "state.json", msgspec.json.encode(self.state))
        return self.state

    def _path(self, level: int) -> Path:
        return self.dir / f"level-{level:02d}.bin"

    def _fd(self, level: int) -> int:
        fd = self._fds.get(level)
        if fd is None:
            fd = self._fds[level] = os.open(self._path(level), os.O_RDWR | os.O_CREAT, 0o644)
        return fd


def _entries(fd: int) -> int:
    return os.fstat(fd).st_size // HASH_BYTES


def chain_hash(line: bytes) -> str:
    """The chain hash a ledger line ends with (``…,"hash":"<64 hex>"}``)."""
    return line[-66:-2].decode()
