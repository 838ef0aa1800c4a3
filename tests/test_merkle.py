"""RFC 6962/9162 hashing, proofs and verifiers, checked against a naive recursive reference.

The reference below is written straight from RFC 6962 §2.1 (recursion, not the iterative code
under test); the verifiers are then fed every kind of hostile proof.
"""

from __future__ import annotations

from collections.abc import Iterator
from hashlib import sha256

from hypothesis import given, settings
from hypothesis import strategies as st

from sheratan.audit.merkle import (
    MemoryTree,
    RootAccumulator,
    consistency_path,
    inclusion_path,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 2000


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(lines: list[bytes]) -> bytes:
    """RFC 6962 §2.1, literally."""
    if len(lines) == 1:
        return sha256(b"\x00" + lines[0]).digest()
    k = _k(len(lines))
    return sha256(b"\x01" + mth(lines[:k]) + mth(lines[k:])).digest()


def path_of(m: int, lines: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n])."""
    if len(lines) == 1:
        return []
    k = _k(len(lines))
    if m < k:
        return [*path_of(m, lines[:k]), mth(lines[k:])]
    return [*path_of(m - k, lines[k:]), mth(lines[:k])]


def proof_of(m: int, lines: list[bytes], whole: bool = True) -> list[bytes]:
    """RFC 6962 §2.1.2 SUBPROOF(m, D[n], b)."""
    n = len(lines)
    if m == n:
        return [] if whole else [mth(lines)]
    k = _k(n)
    if m <= k:
        return [*proof_of(m, lines[:k], whole), mth(lines[k:])]
    return [*proof_of(m - k, lines[k:], False), mth(lines[:k])]


def lines_of(n: int, salt: bytes = b"") -> list[bytes]:
    return [b'{"pos":%d,"salt":"%b"}' % (i, salt) for i in range(1, n + 1)]


_trees: dict[tuple[int, bytes], MemoryTree] = {}


def tree_of(n: int, salt: bytes = b"") -> MemoryTree:
    key = (n, salt)
    if key not in _trees:
        _trees[key] = MemoryTree.of_lines(lines_of(n, salt))
    return _trees[key]


def tampered(path: list[bytes], head: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """Every hostile variant of a proof's path: flipped bytes, swapped siblings, cut, longer."""
    for at in range(len(path)):
        bad = list(path)
        bad[at] = bytes([bad[at][0] ^ 1]) + bad[at][1:]
        yield f"flipped byte in node {at}", bad
    for at in range(len(path) - 1):
        if path[at] != path[at + 1]:
            bad = list(path)
            bad[at], bad[at + 1] = bad[at + 1], bad[at]
            yield f"swapped nodes {at} and {at + 1}", bad
    if path:
        yield "truncated", path[:-1]
        yield "short nodes", [p[:31] for p in path]
    yield "extended by the head", [*path, head]
    yield "extended by zeros", [*path, b"\x00" * 32]


sizes = st.integers(min_value=1, max_value=MAX_SIZE)


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(sizes)
    return n, draw(st.integers(min_value=0, max_value=n - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(sizes)
    return draw(st.integers(min_value=1, max_value=n)), n


def test_known_vectors_match_the_naive_recursion() -> None:
    """Small trees computed by hand-written recursion: roots, every path, every proof."""
    for n in range(1, 40):
        lines = lines_of(n)
        tree = MemoryTree.of_lines(lines)
        assert root(tree, n) == mth(lines), n
        for i in range(n):
            assert inclusion_path(tree, i, n) == path_of(i, lines), (n, i)
        for m in range(1, n + 1):
            assert consistency_path(tree, m, n) == proof_of(m, lines[:n]), (m, n)
            assert root(tree, m) == mth(lines[:m])
    # fixed points anyone can recompute: the RFC's leaf and node prefixes over "a", "b"
    assert leaf_hash(b"a").hex() == sha256(b"\x00a").hexdigest()
    two = MemoryTree.of_lines([b"a", b"b"])
    expected = sha256(b"\x01" + sha256(b"\x00a").digest() + sha256(b"\x00b").digest())
    assert root(two, 2).hex() == expected.hexdigest()


@settings(max_examples=60, deadline=None)
@given(sizes)
def test_streamed_root_equals_the_tree_root(n: int) -> None:
    accumulator = RootAccumulator()
    for leaf in tree_of(n).levels[0]:
        accumulator.add(leaf)
    assert accumulator.root() == root(tree_of(n), n)
    if n <= 300:
        assert accumulator.root() == mth(lines_of(n))


@settings(max_examples=150, deadline=None)
@given(size_and_index())
def test_inclusion_proofs_verify_and_every_tamper_fails(case: tuple[int, int]) -> None:
    n, i = case
    tree = tree_of(n)
    head = root(tree, n)
    leaf = leaf_hash(lines_of(n)[i])
    path = inclusion_path(tree, i, n)
    assert verify_inclusion(leaf, i, n, path, head)
    assert len(path) <= (n - 1).bit_length()  # O(log n): at most ceil(log2 n) nodes

    assert not verify_inclusion(leaf_hash(lines_of(n)[i] + b" "), i, n, path, head)  # line
    for other in {i - 1, i + 1, i ^ 1, n, -1} - {i}:  # wrong index
        assert not verify_inclusion(leaf, other, n, path, head), other
    # a wrong size, with that size's true head (size and head are signed together): some
    # shapes share a path (leaf 0 of 3 and of 4 leaves), never a head
    longer = tree_of(2 * n)  # the same lines, extended
    for size in {n - 1, n + 1, 2 * n} - {n, 0}:
        assert not verify_inclusion(leaf, i, size, path, root(longer, size)), size
    assert not verify_inclusion(leaf, i, 0, path, head)
    for what, bad in tampered(path, head):
        assert not verify_inclusion(leaf, i, n, bad, head), what
    # a proof from another log of the same size does not fit this one's head
    other = tree_of(n, b"other")
    other_leaf = leaf_hash(lines_of(n, b"other")[i])
    assert not verify_inclusion(other_leaf, i, n, inclusion_path(other, i, n), head)
    assert not verify_inclusion(leaf, i, n, path, root(other, n))


@settings(max_examples=150, deadline=None)
@given(two_sizes())
def test_consistency_proofs_verify_and_every_tamper_fails(case: tuple[int, int]) -> None:
    m, n = case
    tree = tree_of(n)
    old, new = root(tree, m), root(tree, n)
    path = consistency_path(tree, m, n)
    assert verify_consistency(m, n, old, new, path)
    assert len(path) <= 2 * (n - 1).bit_length() + 1

    longer = tree_of(2 * n)  # wrong sizes, each with its true head (see the inclusion test)
    for size in {m - 1, m + 1} - {m, 0}:
        assert not verify_consistency(size, n, root(longer, size), new, path), ("m", size)
    for size in {n - 1, n + 1, 2 * n} - {n, 0}:
        assert not verify_consistency(m, size, old, root(longer, size), path), ("n", size)
    assert not verify_consistency(0, n, old, new, path)
    assert not verify_consistency(m, n, new if m != n else b"\x01" * 32, new, path)  # old root
    assert not verify_consistency(m, n, old, old if m != n else b"\x01" * 32, path)
    for what, bad in tampered(path, new):
        assert not verify_consistency(m, n, old, new, bad), what
    if path:
        assert not verify_consistency(m, n, old, new, path[1:])  # cut at the leaf end
    assert not verify_consistency(m, n, old, new, [b"\x00" * 32, *path])
    # another log: its proof and its heads never fit this log's
    other = tree_of(n, b"other")
    other_path = consistency_path(other, m, n)
    assert not verify_consistency(m, n, old, new, other_path) or other_path == path
    assert not verify_consistency(m, n, root(other, m), new, path)
    assert not verify_consistency(m, n, old, root(other, n), path)


@settings(max_examples=40, deadline=None)
@given(sizes, st.data())
def test_an_edited_leaf_changes_every_later_head(n: int, data: st.DataObject) -> None:
    """What `audit verify --pubkey` relies on: an edit at i changes MTH of every size > i."""
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    lines = lines_of(n)
    edited = list(lines)
    edited[i] = edited[i] + b" "
    tree, forged = tree_of(n), MemoryTree.of_lines(edited)
    for size in range(1, n + 1, max(1, n // 50)):
        assert (root(tree, size) == root(forged, size)) == (size <= i)
