"""History snapshots of views: as_of from them equals a fold from position 1, a snapshot of
another log is ignored, and thinning keeps the count bounded."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from decision_helpers import simulated_home
from hypothesis import given, settings
from hypothesis import strategies as st

from sheratan.home import Home
from sheratan.time_travel import SLIDER_KINDS, views_at
from sheratan.views import JOB_STATUSES, JOBS, PRIORS, EventReader, ViewKind, Views


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """A real home whose log holds jobs, decisions, priors and baselines (~340 events)."""
    home, _ = simulated_home(tmp_path_factory.mktemp("history") / "home", 30)
    yield home
    home.close()


def from_one(home: Home, kind: ViewKind[Any], at: int) -> Any:
    """The view folded from position 1, by hand (no snapshot involved)."""
    view = kind.new()
    for position, event in EventReader().events(home.ledger, 1, at):
        view.apply(position, event)
    return view


def fresh_views(home: Home, interval: int, keep: int) -> Views:
    """Views of ``home`` with no saved view and no history yet."""
    shutil.rmtree(home.path / "projections", ignore_errors=True)
    return Views(home.path, home.ledger, interval=interval, keep=keep)


def assert_same(kind: ViewKind[Any], got: Any, expected: Any) -> None:
    assert kind.dump(got) == kind.dump(expected), kind.name


@settings(max_examples=40, deadline=None)
@given(
    positions=st.lists(st.integers(1, 400), min_size=1, max_size=12),
    interval=st.integers(5, 60),
    keep=st.integers(2, 6),
    ahead=st.sampled_from(SLIDER_KINDS),
)
def test_as_of_from_snapshots_equals_a_fold_from_one(
    simulated: Home, positions: list[int], interval: int, keep: int, ahead: ViewKind[Any]
) -> None:
    home = simulated
    last = home.ledger.last_position()
    views = fresh_views(home, interval, keep)
    views.current(PRIORS)  # a saved view at the end, which positions before it must not use
    views.rebuild(ahead)  # one view's history ahead: the one pass starts each at its own
    for position in positions:
        at = min(position, last)
        got = views.as_of_all(SLIDER_KINDS, position)
        for kind, view in zip(SLIDER_KINDS, got, strict=True):
            assert view.position == at
            assert_same(kind, view, from_one(home, kind, at))
        assert got[0].counts() == from_one(home, JOBS, at).counts()
        for kind in SLIDER_KINDS:
            assert len(views.history(kind)) <= keep
    if min(max(positions), last) >= interval:
        assert views.history(JOB_STATUSES), "folding forward kept snapshots"
    assert not views.history(JOBS), "the full jobs view keeps no history"


class CountingReader(EventReader):
    """The real reader, noting the positions it yields (how far a fold read; events that no
    view being folded takes are skipped undecoded, so not every position is yielded)."""

    def __init__(self) -> None:
        super().__init__()
        self.positions: list[int] = []

    def events(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for item in super().events(*args, **kwargs):
            self.positions.append(item[0])
            yield item


def test_a_fold_resumes_from_the_nearest_snapshot_not_from_one(simulated: Home) -> None:
    home = simulated
    writer = fresh_views(home, 50, 100)
    for kind in SLIDER_KINDS:
        writer.rebuild(kind)
    reader = CountingReader()
    views = Views(home.path, home.ledger, reader, interval=50, keep=100)
    last = home.ledger.last_position()
    assert views.history(JOB_STATUSES) == list(range(50, last + 1, 50))
    got = views.as_of_all(SLIDER_KINDS, 160)
    # all three from their snapshots at 150, in one pass
    assert reader.positions and min(reader.positions) > 150 and max(reader.positions) <= 160
    assert len(reader.positions) == len(set(reader.positions))
    read = len(reader.positions)
    for kind, view in zip(SLIDER_KINDS, got, strict=True):
        assert_same(kind, view, from_one(home, kind, 160))
    views.as_of(JOB_STATUSES, 150)
    assert len(reader.positions) == read  # a snapshot at the position itself: nothing to read


def test_a_snapshot_of_a_replaced_log_is_ignored_and_removed(
    simulated: Home, tmp_path: Path
) -> None:
    home = simulated
    views = fresh_views(home, 40, 100)
    views.rebuild(JOB_STATUSES)
    stale = views.history(JOB_STATUSES)
    other, _ = simulated_home(tmp_path / "other", 30, seed=7)
    try:
        shutil.copytree(home.path / "projections", other.path / "projections", dirs_exist_ok=True)
        replaced = Views(other.path, other.ledger, interval=40, keep=100)
        assert replaced.history(JOB_STATUSES) == stale
        at = min(other.ledger.last_position(), stale[-1] + 5)
        got = replaced.as_of(JOB_STATUSES, at)
        assert_same(JOB_STATUSES, got, from_one(other, JOB_STATUSES, at))
        assert all(p > at for p in set(stale) & set(replaced.history(JOB_STATUSES)))
    finally:
        other.close()


def test_thinning_keeps_the_count_bounded_and_widens_the_gaps(simulated: Home) -> None:
    home = simulated
    views = fresh_views(home, 5, 4)
    last = home.ledger.last_position()
    for at in range(1, last + 1, 7):  # the history grows as the fold moves forward
        views.as_of(PRIORS, at)
        kept = views.history(PRIORS)
        assert len(kept) <= 4
    gaps = [b - a for a, b in itertools.pairwise(kept)]
    assert min(gaps) >= 5 * 2**5, gaps  # ~340 positions in at most 4 snapshots
    assert kept[-1] > last - 2 * max(gaps)


def test_rebuild_current_and_the_engines_save_write_the_history(simulated: Home) -> None:
    home = simulated
    last = home.ledger.last_position()
    views = fresh_views(home, 100, 16)
    views.current(PRIORS)
    assert views.history(PRIORS) == [100, 200, 300]
    views.rebuild(PRIORS)
    assert views.history(PRIORS) == [100, 200, 300]
    engine = from_one(home, JOB_STATUSES, last)  # the live engine folds by itself, then saves
    views.save(JOB_STATUSES, engine)
    views.save(JOB_STATUSES, engine)
    assert views.history(JOB_STATUSES) == [last]


def test_views_at_answers_what_the_full_jobs_view_counts(simulated: Home) -> None:
    """The slider's answer from snapshots of the compact view: the counts the full jobs view
    folded from position 1 gives (what /api/views answered before the history)."""
    home = simulated
    home.__dict__["views"] = fresh_views(home, 20, 4)  # Home.views is a cached property
    try:
        for at in range(1, home.ledger.last_position() + 1, 13):
            answer = views_at(home, at)
            full = from_one(home, JOBS, at)
            assert answer["position"] == at
            assert answer["jobs"] == {
                "total": len(full.jobs),
                "by_status": dict(sorted(full.counts().items())),
            }
            priors = from_one(home, PRIORS, at).priors
            assert {(p["intent"], p["key"]): p["visits"] for p in answer["priors"]} == {
                key: prior.visits for key, prior in priors.items()
            }
        assert home.views.history(JOB_STATUSES)
    finally:
        del home.__dict__["views"]
