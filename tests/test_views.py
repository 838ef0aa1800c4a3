"""Views fold the log: resumable, rebuildable, and computable as of any position."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from sheratan.home import Home, init_home
from sheratan.lifecycle import IllegalTransitionError
from sheratan.views import JOB_STATUSES, JOBS, MISSIONS, QUEUE, VIEW_KINDS, EventReader
from tests.decision_helpers import simulated_home

# A job command and the arguments it needs; illegal ones are skipped by the app's rules.
COMMANDS = st.sampled_from(
    ["dispatch", "start", "complete", "fail", "retry", "queue", "cancel", "time_out"]
)


def _run(
    home: Home, script: list[tuple[int, str]], jobs: int, tasks: tuple[UUID | None, ...] = (None,)
) -> list:
    """Create ``jobs`` jobs (in ``tasks`` in turn) and run the script's commands on them."""
    app = home.app
    ids = [
        app.create_job("noop", {"i": i}, max_retries=2, task_id=tasks[i % len(tasks)])
        for i in range(jobs)
    ]
    steps = {
        "dispatch": lambda j: app.dispatch_job(j, "w"),
        "start": app.start_job,
        "complete": lambda j: app.complete_job(j, {"ok": 1}),
        "fail": lambda j: app.fail_job(j, "x"),
        "retry": app.schedule_retry,
        "queue": app.queue_job,
        "cancel": app.cancel_job,
        "time_out": app.time_out_job,
    }
    for which, command in script:
        with contextlib.suppress(IllegalTransitionError):
            steps[command](ids[which % jobs])
    return ids


@settings(max_examples=25, deadline=None)
@given(
    script=st.lists(st.tuples(st.integers(0, 10), COMMANDS), max_size=40),
    cut=st.floats(0, 1),
)
def test_resumed_view_equals_rebuilt_and_live_state(script: list, cut: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h"
        init_home(path)
        home = Home.open(path)
        ids = _run(home, script[: int(len(script) * cut)], jobs=4)
        home.views.current(JOBS)  # saved part-way
        _run(home, script[int(len(script) * cut) :], jobs=2)
        resumed = home.views.current(JOBS)
        rebuilt = home.views.rebuild(JOBS)
        assert resumed.jobs == rebuilt.jobs
        assert resumed.position == rebuilt.position == home.ledger.last_position()
        for job_id in ids:
            assert rebuilt.jobs[job_id] == home.app.get_job(job_id)
        home.close()


def test_as_of_position_shows_the_past(home: Path) -> None:
    opened = Home.open(home)
    app = opened.app
    mission = app.create_mission("m")
    position_mission = opened.ledger.last_position()
    job = app.create_job("noop", {})
    position_queued = opened.ledger.last_position()
    app.dispatch_job(job, "w")
    app.complete_job(job, {"done": True})
    assert opened.views.as_of(JOBS, position_queued).jobs[job].status == "queued"
    assert opened.views.as_of(JOBS, position_queued - 1).jobs[job].status == "created"
    assert opened.views.as_of(JOBS, position_mission).jobs == {}
    assert opened.views.current(JOBS).jobs[job].status == "completed"
    assert list(opened.views.as_of(MISSIONS, position_mission).missions) == [mission]
    assert opened.views.as_of(MISSIONS, position_mission - 1).missions == {}


def test_a_view_saved_for_another_log_is_rebuilt(home: Path, tmp_path: Path) -> None:
    opened = Home.open(home)
    for _ in range(3):
        opened.app.create_job("noop", {})
    opened.views.current(JOBS)
    other = tmp_path / "other"
    init_home(other)
    (other / "projections").mkdir()
    (other / "projections" / "jobs.msgpack").write_bytes(
        (home / "projections" / "jobs.msgpack").read_bytes()
    )
    fresh = Home.open(other)
    job = fresh.app.create_job("noop", {})
    assert list(fresh.views.current(JOBS).jobs) == [job]


def test_a_view_from_another_history_of_the_same_length_is_not_trusted(
    home: Path, tmp_path: Path
) -> None:
    opened = Home.open(home)
    for _ in range(3):
        opened.app.create_job("noop", {})
    opened.views.current(JOBS)
    other = tmp_path / "other"
    init_home(other)
    fresh = Home.open(other)
    mine = {fresh.app.create_job("noop", {}) for _ in range(4)}
    (other / "projections").mkdir(exist_ok=True)
    (other / "projections" / "jobs.msgpack").write_bytes(
        (home / "projections" / "jobs.msgpack").read_bytes()
    )
    assert set(fresh.views.current(JOBS).jobs) == mine


def test_rebuild_all_in_one_pass_equals_each_rebuilt_alone(home: Path) -> None:
    opened = Home.open(home)
    _run(opened, [(i, c) for i, c in enumerate(["dispatch", "start", "complete", "fail"] * 3)], 5)
    kinds = [JOBS, MISSIONS, JOB_STATUSES, QUEUE]
    together = opened.views.rebuild_all(kinds)
    for kind, view in zip(kinds, together, strict=True):
        alone = opened.views.rebuild(kind)
        assert view.position == alone.position == opened.ledger.last_position()
        assert kind.dump(view) == kind.dump(alone)
        assert kind.dump(opened.views.saved(kind)) == kind.dump(alone)
    opened.close()


def test_routed_one_pass_rebuild_equals_every_view_fed_every_event(tmp_path: Path) -> None:
    """Each view gets only the events its FOLDS name: the same views as feeding it all."""
    opened, _ = simulated_home(tmp_path / "h", jobs=60)
    app = opened.app
    for i in range(3):
        job = app.create_job("noop", {"i": i})
        app.dispatch_job(job, "w")
    kinds = list(VIEW_KINDS.values())
    routed = opened.views.rebuild_all(kinds)
    for kind, view in zip(kinds, routed, strict=True):
        plain = kind.new()
        for position, event in EventReader().events(opened.ledger):
            plain.apply(position, event)
        assert plain.position == view.position == opened.ledger.last_position()
        assert kind.dump(plain) == kind.dump(view), kind.name
    opened.close()
