"""The persisted tree cache grows in steps, survives a torn write, and equals the tree in memory."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sheratan.audit.tree as tree_module
from sheratan.audit.merkle import MemoryTree, consistency_path, inclusion_path, root
from sheratan.audit.tree import TreeCache


def line(pos: int, salt: str = "") -> bytes:
    digest = f"{pos:064x}" if not salt else f"{salt}{pos:063x}"[-64:]
    return b'{"pos":%d,"hash":"%b"}' % (pos, digest.encode())


class FakeLog:
    def __init__(self, n: int, salt: str = "") -> None:
        self.lines_ = [line(p, salt) for p in range(1, n + 1)]

    def head_at(self, pos: int) -> str | None:
        return self.lines_[pos - 1][-66:-2].decode() if 1 <= pos <= len(self.lines_) else None

    def lines(self, first: int, last: int) -> Iterator[tuple[int, bytes]]:
        for pos in range(first, min(last, len(self.lines_)) + 1):
            yield pos, self.lines_[pos - 1]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=4))
def test_grown_in_steps_it_equals_the_tree_in_memory(steps: list[int]) -> None:
    total = sum(steps)
    log = FakeLog(total)
    memory = MemoryTree.of_lines(log.lines_)
    with tempfile.TemporaryDirectory() as folder:
        size = 0
        for step in steps:
            size += step
            cache = TreeCache(Path(folder))  # a fresh process each step
            assert cache.sync(size, log.head_at, log.lines)
            assert cache.size == size
            assert root(cache, size) == root(memory, size)
            for index in {0, size // 2, size - 1}:
                assert inclusion_path(cache, index, size) == inclusion_path(memory, index, size)
            assert consistency_path(cache, 1, size) == consistency_path(memory, 1, size)
            cache.close()


def test_a_small_batch_size_gives_the_same_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tree_module, "BATCH_LEAVES", 7)
    log = FakeLog(1000)
    cache = TreeCache(tmp_path)
    cache.sync(1000, log.head_at, log.lines)
    assert root(cache, 1000) == root(MemoryTree.of_lines(log.lines_), 1000)
    cache.close()


def test_a_torn_write_is_cut_back_and_a_changed_log_drops_the_cache(tmp_path: Path) -> None:
    log = FakeLog(100)
    cache = TreeCache(tmp_path)
    cache.sync(60, log.head_at, log.lines)
    cache.close()
    with (tmp_path / "level-00.bin").open("ab") as handle:  # leaves written, state not
        handle.write(b"\x07" * 32 * 5)
    cache = TreeCache(tmp_path)
    assert cache.size == 60
    assert (tmp_path / "level-00.bin").stat().st_size == 60 * 32
    assert cache.sync(100, log.head_at, log.lines)
    assert root(cache, 100) == root(MemoryTree.of_lines(log.lines_), 100)
    cache.close()
    other = FakeLog(100, salt="f")  # another log under the same cache: dropped, rebuilt
    cache = TreeCache(tmp_path)
    assert not cache.sync(100, other.head_at, other.lines)
    assert root(cache, 100) == root(MemoryTree.of_lines(other.lines_), 100)
    cache.close()
