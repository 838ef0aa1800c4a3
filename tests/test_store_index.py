"""The sidecar index round-trips: every stream's versions and positions, made lazily."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sheratan.store.index import LogIndex, StreamVersions

events = st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(1, 50)), max_size=200)


@settings(max_examples=60, deadline=None)
@given(events=events, touched=st.sets(st.sampled_from("abcdefgh")))
def test_a_loaded_index_answers_like_the_saved_one(
    tmp_path_factory: object, events: list[tuple[str, int]], touched: set[str]
) -> None:
    path = Path(tmp_path_factory.mktemp("index")) / "events.idx"  # type: ignore[attr-defined]
    index = LogIndex()
    seen: set[tuple[str, int]] = set()
    for stream, version in events:
        if (stream, version) in seen:
            continue
        seen.add((stream, version))
        index.add(index.last_pos + 1, index.last_pos * 10, stream, version)
    index.save(path)
    loaded = LogIndex.load(path, path.parent)
    assert loaded is not None
    for stream in touched:  # some streams made before the next save, some never
        for either in (loaded, index):
            if either.streams.get(stream) is None:
                either.streams[stream] = StreamVersions()
            either.streams[stream].add(99, either.last_pos + 1)
    assert sorted(loaded.streams) == sorted(index.streams)
    assert len(loaded.streams) == len(index.streams)
    for stream in index.streams:
        assert stream in loaded.streams
        assert list(loaded.streams[stream].versions) == list(index.streams[stream].versions)
        assert list(loaded.streams[stream].positions) == list(index.streams[stream].positions)
    loaded.save(path)
    again = LogIndex.load(path, path.parent)
    assert again is not None
    for stream in index.streams:
        assert list(again.streams[stream].positions) == list(index.streams[stream].positions)
    assert again.streams.get("zz") is None
    assert "zz" not in again.streams
