"""Exact replay of ranges of the log in processes: the same report as one pass."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sheratan.dispatch.service import SIMULATION, EngineConfig, simulate
from sheratan.home import Home
from sheratan.replay.exact import replay_exact
from sheratan.replay.history import History
from sheratan.replay.parallel import plan, replay_exact_ranges
from sheratan.workers.simulated import EXAMPLE_WORKERS, load_profiles
from tests.cli_helpers import invoke, refused
from tests.decision_helpers import dispatch_under_unrecorded_budget, exported, simulated


@pytest.fixture(scope="module")
def drifting_log(
    make_module_home: Callable[[Path], Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Simulated decisions, then decisions under a budget the log does not record (major
    drift), then more simulated decisions: findings in the middle of the log; on each store."""
    path = make_module_home(tmp_path_factory.mktemp("parallel") / "home")
    home, _ = simulated(path, 150, seed=1)
    dispatch_under_unrecorded_budget(home, 8)
    home.close()
    home, _ = simulated(path, 150, seed=3, epsilon=0.3)
    home.close()
    return path


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("since", [1, 700])
def test_ranges_in_processes_report_what_one_pass_reports(
    drifting_log: Path, workers: int, since: int
) -> None:
    home = Home.open(drifting_log)
    try:
        ledger = exported(home)
        one = replay_exact(History(ledger), check_from=since).summary()
        ranges = plan(since, ledger.last_position(), workers, min_per_process=100)
        assert len(ranges) == workers
        split = replay_exact_ranges(
            ledger, check_from=since, workers=workers, min_per_process=100
        ).summary()
    finally:
        home.close()
    assert split == one
    assert one["decisions"] > 100
    if since == 1:
        assert one["drift"]["major"] >= 8
        assert one["findings"]


@given(
    first=st.integers(1, 5_000),
    length=st.integers(1, 200_000),
    workers=st.integers(1, 16),
    share=st.floats(0.0, 1.0),
)
def test_the_plan_cuts_the_range_into_contiguous_balanced_pieces(
    first: int, length: int, workers: int, share: float
) -> None:
    last = first + length - 1
    ranges = plan(first, last, workers, share=share, min_per_process=1_000)
    assert 1 <= len(ranges) <= workers
    assert ranges[0][0] == first
    assert ranges[-1][1] == last
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert start == end + 1
    assert all(start <= end for start, end in ranges)
    work = [share * (start - 1) + end - start + 1 for start, end in ranges]
    assert max(work) - min(work) <= max(2.0, 0.01 * max(work)) or len(ranges) == 1


def test_replay_takes_a_count_of_processes(drifting_log: Path) -> None:
    refused(drifting_log, "replay", "--exact", "--workers", "0", needle="--workers")
    args = ("replay", "--exact", "--json", "--workers")
    reports = [json.loads(invoke(drifting_log, *args, n, code=1).stdout) for n in ("1", "2")]
    for report in reports:
        del report["run_id"]
    one, two = reports
    assert one == two
    assert one["drift"]["major"] >= 8


def test_a_payload_that_names_a_decision_topic_is_folded_as_a_job(any_home: Path) -> None:
    """The range's prefix skips ``decision.made`` lines by their envelope topic: a job whose
    payload holds ``"topic": "decision.made"`` is still a job."""
    home = Home.open(any_home)
    payload = {"topic": "decision.made", "prompt": "a decision, in words"}
    job = home.app.create_job("llm_call", payload, namespace=SIMULATION)
    simulate(home, EngineConfig.load(seed=1), load_profiles(EXAMPLE_WORKERS), 40)
    try:
        ledger = exported(home)
        line = next(raw for _, raw in ledger.lines(1, 50) if str(job).encode() in raw)
        assert b'"topic":"decision.made"' in line
        one = replay_exact(History(ledger)).summary()
        split = replay_exact_ranges(ledger, workers=2, min_per_process=10).summary()
    finally:
        home.close()
    assert split == one
    assert one["drift"]["none"] == one["decisions"] > 40
