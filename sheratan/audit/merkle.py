"""RFC 6962/9162 Merkle tree hashing with SHA-256: tree heads, audit paths, consistency proofs.

Pure and standalone (it imports nothing of the home or the store), so an outside verifier can
read it in one sitting. The tree is over leaves 0..n-1 (log positions 1..n):

- leaf hash ``sha256(0x00 || line)``, line = the event line's stored bytes without newline;
- node hash ``sha256(0x01 || left || right)``;
- ``MTH(D[0:n])`` splits at ``k``, the largest power of two smaller than ``n`` (RFC 6962 §2.1).

Proof *generation* asks a ``Subtrees`` source for the hashes of perfect subtrees (``2**level``
leaves starting at ``index * 2**level``), so the same code serves a list in memory and the
persisted level files of ``sheratan.audit.tree``. Every node of the tree is a range
``[a, min(a + 2**j, n))`` with ``a`` a multiple of ``2**j``: either perfect (one lookup) or the
tree's right edge, folded from at most log2(n) perfect subtrees. Proof *verification* follows
the iterative algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 and needs no source at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256
from typing import Protocol

HASH_BYTES = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
#: The longest path a verifier accepts: a tree of 2**64 leaves (anything longer is hostile).
MAX_PATH_NODES = 64


def leaf_hash(line: bytes) -> bytes:
    return sha256(LEAF_PREFIX + line).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(NODE_PREFIX + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k (n >= 2): where RFC 6962 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


class Subtrees(Protocol):
    """A source of perfect subtree hashes: ``level`` 0 holds the leaf hashes by index."""

    def perfect(self, level: int, index: int) -> bytes: ...


def subtree_hash(source: Subtrees, start: int, end: int) -> bytes:
    """MTH of leaves [start, end), where start is aligned to the subtree's size (see above).

    The range splits into perfect subtrees of decreasing size (the binary digits of
    end - start); the tree folds them from the right.
    """
    parts: list[bytes] = []
    while start < end:
        level = (end - start).bit_length() - 1
        parts.append(source.perfect(level, start >> level))
        start += 1 << level
    if not parts:
        raise ValueError("an empty range has no Merkle tree hash here")
    out = parts.pop()
    while parts:
        out = node_hash(parts.pop(), out)
    return out


def root(source: Subtrees, size: int) -> bytes:
    """The tree head of the first ``size`` leaves (size >= 1)."""
    return subtree_hash(source, 0, size)


def inclusion_path(source: Subtrees, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 6962 §2.1.1, leaf sibling first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = largest_power_of_two_below(end - start)
        if index < start + k:
            path.append(subtree_hash(source, start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(source, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_path(source: Subtrees, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(m, D[0:n]) of RFC 6962 §2.1.2 (empty when m == n)."""
    if not 1 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}")
    path: list[bytes] = []
    start, end, m, whole = 0, new_size, old_size, True
    while m != end - start:
        k = largest_power_of_two_below(end - start)
        if m <= k:
            path.append(subtree_hash(source, start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(source, start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        path.append(subtree_hash(source, start, end))
    path.reverse()
    return path


def root_from_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2: the root ``path`` leads to from ``leaf``, or None if it cannot be."""
    if not 0 <= index < size or len(path) > MAX_PATH_NODES:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0 or len(p) != HASH_BYTES:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            fn, sn = _shift_to_odd(fn, sn)
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def _shift_to_odd(fn: int, sn: int) -> tuple[int, int]:
    """RFC 9162: right-shift fn and sn equally until fn's low bit is set or fn is 0."""
    while fn and not fn & 1:
        fn >>= 1
        sn >>= 1
    return fn, sn


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], expected_root: bytes
) -> bool:
    return root_from_inclusion(leaf, index, size, path) == expected_root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: does the tree of ``new_size`` extend the one of ``old_size``?"""
    if not 1 <= old_size <= new_size or len(path) > MAX_PATH_NODES:
        return False
    if any(len(p) != HASH_BYTES for p in path):
        return False
    if old_size == new_size:
        return not path and old_root == new_root
    if not path:
        return False
    nodes = list(path)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node
        nodes.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:  # RFC 9162 §2.1.4.2 step 4: strip the common right edge
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            fn, sn = _shift_to_odd(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


class MemoryTree:
    """Every perfect subtree of a list of leaf hashes, in memory: small logs and tests."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @classmethod
    def of_lines(cls, lines: Iterable[bytes]) -> MemoryTree:
        return cls(leaf_hash(line) for line in lines)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash and every perfect subtree it completes."""
        self.levels[0].append(leaf)
        level = 0
        while len(self.levels[level]) % 2 == 0:
            below = self.levels[level]
            if level + 1 == len(self.levels):
                self.levels.append([])
            self.levels[level + 1].append(node_hash(below[-2], below[-1]))
            level += 1

    def perfect(self, level: int, index: int) -> bytes:
        return self.levels[level][index]


class RootAccumulator:
    """The tree head of a stream of leaves, in O(log n) memory: one pass, any prefix's root.

    Holds the roots of the perfect subtrees that make up the leaves seen so far (largest
    first), like the digits of a binary counter.
    """

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    def add(self, leaf: bytes) -> None:
        self.size += 1
        self._stack.append(leaf)
        merges = (self.size & -self.size).bit_length() - 1  # trailing zeros of the new size
        for _ in range(merges):
            right = self._stack.pop()
            self._stack.append(node_hash(self._stack.pop(), right))

    def root(self) -> bytes:
        if not self._stack:
            raise ValueError("an empty log has no tree head")
        out = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            out = node_hash(left, out)
        return out
