"""Replay never reads the live world: a decision records what its gates read outside its
arguments (G3's path checks, G0's worker health, G5's evidence; the clock is its timestamp),
and exact replay re-runs it on that recording."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from events.decisions import DecisionMade, ErrorInfo, Evidence, Observed, PathCheck
from projections.jobs import JobState
from projections.priors import PriorsView
from projections.workers import WorkerState
from sheratan.analytics.text import replay_text
from sheratan.decide.engine import CandidateSpec, DecisionEngine
from sheratan.decide.gates import evidence, resolves_inside_cached
from sheratan.decide.policy import load_gates, load_scoring
from sheratan.decide.selection import SelectionPolicy
from sheratan.dispatch.runner import Runner
from sheratan.dispatch.service import EngineConfig, build_dispatcher
from sheratan.home import Home
from sheratan.recording import Ids, WallClock
from sheratan.replay.exact import replay_exact
from sheratan.replay.history import History
from sheratan.workers.outcome import Outcome
from tests.decision_helpers import ROOT, decisions, exported, simulated
from tests.states import NOW, job_state, worker_state

GATES = load_gates()


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args, "--home", "h"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_deleting_a_symlink_after_dispatch_leaves_exact_replay_clean(
    make_home: Callable[[Path], Path], tmp_path: Path
) -> None:
    """Item 9 as a new user met it: a job names a path through a symlink out of the workspace;
    G3 refuses it; the symlink is deleted; ``replay --exact`` re-runs G3 on the recording."""
    make_home(tmp_path / "h")  # on each store; ``init`` below finds it made
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret")
    (workspace / "link").symlink_to(tmp_path / "outside")
    for args in (
        ("init",),
        ("worker", "register", "w1", "--kinds", "file_read", "--transport", "local"),
        ("job", "create", "file_read", "--payload", '{"path": "link/secret.txt"}'),
        ("dispatch", "--until-idle", "--workspace", "ws"),
    ):
        done = cli(*args, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr)
    (workspace / "link").unlink()

    done = cli("replay", "--exact", "--json", cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    # nothing on stderr but, on a PostgreSQL home, how far the export is behind
    assert all(line.startswith("export: ") for line in done.stderr.splitlines()), done.stderr
    summary = json.loads(done.stdout)
    assert summary["drift"] == {"none": 1, "minor": 0, "major": 0}
    assert summary["worker_health_differs"] == 0
    home = Home.open(tmp_path / "h")
    try:
        [(made, _)] = decisions(home)
    finally:
        home.close()
    assert made.reason.startswith("ABORT")  # G3 refused the path while the symlink was there
    assert made.observed is not None
    assert made.observed.paths == (PathCheck("link/secret.txt", False),)
    assert [w.worker for w in made.observed.workers] == ["w1"]


# ------------------------------------------------------- the recording reproduces


def _engine(workspace: Path, epsilon: float) -> DecisionEngine:
    return DecisionEngine(
        scoring=load_scoring(),
        gates=GATES,
        selection=SelectionPolicy("ucb", 0.5, epsilon),
        workspace=workspace,
        rng=random.Random(7),
        seed=7,
        build_id="test",
    )


def _decide(
    engine: DecisionEngine,
    job: JobState,
    specs: list[CandidateSpec],
    draw: float,
    observed: Observed | None = None,
) -> DecisionMade:
    engine.rng = _Draw(draw)
    node = {"decision_id": NODE, "trace_id": NODE, "parent": None, "depth": 0}
    return engine.decide(
        **node,
        intent="recover_failure",
        job=job,
        specs=specs,
        priors=PriorsView(),
        constraints={},
        now=NOW,
        observed=observed,
    )


class _Draw(random.Random):
    def __init__(self, draw: float) -> None:
        super().__init__(0)
        self.draw = draw

    def random(self) -> float:
        return self.draw


NODE = uuid4()
_health = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["active", "quarantined"]),
        "quarantined_until": st.one_of(
            st.none(), st.integers(-600, 600).map(lambda s: NOW + timedelta(seconds=s))
        ),
        "last_seen": st.integers(0, 120).map(lambda s: NOW - timedelta(seconds=s)),
        "transport": st.sampled_from(["local", "heartbeating"]),  # only the latter goes silent
        "recent": st.lists(st.booleans(), max_size=30).map(tuple),
    }
)
_worlds = st.fixed_dictionaries(
    {
        "health": st.lists(_health, min_size=1, max_size=4),
        "link_out": st.booleans(),
        "path": st.sampled_from(["link/a.txt", "plain/a.txt", "link"]),
    }
)


def _world(tmp: Path, world: dict[str, Any]) -> tuple[JobState, list[CandidateSpec]]:
    """The workspace (a symlink ``link`` out of it, or into it) and the recovery candidates
    over workers in the given health: RETRY and FALLBACKs, and QUARANTINE on evidence."""
    link = tmp / "ws" / "link"
    link.unlink(missing_ok=True)
    link.symlink_to(tmp / "out" if world["link_out"] else tmp / "ws" / "plain")
    workers = [
        worker_state(f"w{i}", kinds=("file_read",), **health)
        for i, health in enumerate(world["health"])
    ]
    failed = workers[0]
    specs = [CandidateSpec("RETRY", f"RETRY:{failed.id}", failed, {"worker": failed.id})]
    specs += [CandidateSpec("FALLBACK", f"FALLBACK:{w.id}", w, {"worker": w.id}) for w in workers]
    specs += [
        CandidateSpec(
            "QUARANTINE",
            f"QUARANTINE:{failed.id}",
            None,
            {"worker": failed.id},
            evidence=evidence(GATES.quarantine_evidence, failed.id, failed.recent),
        ),
        CandidateSpec("ABORT", "ABORT", None, {}, runs_job=False),
    ]
    return job_state("file_read", {"path": world["path"]}), specs[:7]


@settings(max_examples=150, deadline=None)
@given(then=_worlds, now=_worlds, draw=st.floats(0.0, 0.999), epsilon=st.sampled_from([0, 0.3]))
def test_a_decision_rerun_on_its_recording_reproduces_its_hashes_whatever_the_world_became(
    tmp_path_factory: Any, then: dict[str, Any], now: dict[str, Any], draw: float, epsilon: float
) -> None:
    tmp = tmp_path_factory.mktemp("world")
    for folder in ("ws/plain", "out"):
        (tmp / folder).mkdir(parents=True)
    engine = _engine(tmp / "ws", epsilon)
    job, specs = _world(tmp, then)
    recorded = _decide(engine, job, specs, draw)
    assert recorded.observed is not None
    # The world changes (the symlink, every worker's health and record) before the replay;
    # the candidates keep their workers, as the log fixes who they are.
    now["health"] = (now["health"] * 4)[: len(then["health"])]
    now["path"] = then["path"]
    _, changed = _world(tmp, now)
    resolves_inside_cached.cache_clear()  # the cache must not stand in for the recording

    rerun = _decide(engine, job, changed, draw, observed=recorded.observed)

    assert rerun.input_hash == recorded.input_hash
    assert rerun.output_hash == recorded.output_hash
    assert rerun.observed == recorded.observed
    assert msgspec.json.decode(msgspec.json.encode(recorded), type=DecisionMade) == recorded


def test_the_recording_holds_each_input_the_gates_read(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "out").mkdir()
    engine = _engine(tmp_path / "ws", 0.0)
    silent = {"transport": "heartbeating", "last_seen": NOW - timedelta(hours=1)}
    job, specs = _world(
        tmp_path,
        {
            "health": [{"recent": (True, False, False)}, silent],
            "link_out": True,
            "path": "link/a.txt",
        },
    )
    made = _decide(engine, job, specs, 0.5)
    assert made.observed is not None
    assert made.observed.paths == (PathCheck("link/a.txt", False),)
    by_worker = {w.worker: w for w in made.observed.workers}
    assert set(by_worker) == {"w0", "w1"}
    assert by_worker["w0"].last_seen is None  # G0 never asks an in-process worker
    assert by_worker["w1"].last_seen == NOW - timedelta(hours=1)
    assert made.observed.evidence == (Evidence(worker="w0", streak=2, attempts=3, failures=2),)
    quarantine = next(c for c in made.candidates if c.type == "QUARANTINE")
    assert quarantine.params["evidence"] == {"streak": 2, "attempts": 3, "failures": 2}
    assert made.timestamp == NOW  # the clock the gates read is the decision's timestamp


def test_a_decision_recorded_before_observed_decodes_and_reruns_as_before(
    tmp_path: Path,
) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "out").mkdir()
    engine = _engine(tmp_path / "ws", 0.1)
    job, specs = _world(tmp_path, {"health": [{}], "link_out": False, "path": "link/a.txt"})
    made = _decide(engine, job, specs, 0.25)
    old = msgspec.json.decode(msgspec.json.encode(made))
    del old["observed"]
    decoded = msgspec.json.decode(msgspec.json.encode(old), type=DecisionMade)
    assert decoded.observed is None
    rerun = _decide(engine, job, specs, 0.25, observed=decoded.observed)
    assert (rerun.input_hash, rerun.output_hash) == (made.input_hash, made.output_hash)


# ------------------------------------------- recorded health against the fold


class FailingTransport:
    """Every attempt fails: each dispatch is followed by recovery decisions."""

    def execute(self, job: JobState, worker: WorkerState) -> Outcome:
        return Outcome(False, 1.0, error=ErrorInfo("boom", "the attempt failed"))


def _stale_run(home_path: Path, workers: tuple[str, ...], stale: str, *, failing: bool) -> dict:
    """Dispatch one noop job in the home at ``home_path`` while the dispatcher's view of
    worker ``stale`` lags the log (another process released it between the dispatcher's read
    and its save), then replay."""
    home = Home.open(home_path)
    try:
        for worker in workers:
            home.app.register_worker(worker, ("noop",), "local")
        home.app.create_job("noop", {})
        dispatcher = build_dispatcher(
            home,
            EngineConfig.load(workspace=home_path, epsilon=0.0),
            clock=WallClock(),
            ids=Ids(),
            outcomes_rng=random.Random(0),
        )
        if failing:
            dispatcher.transports["local"] = FailingTransport()
        view = dispatcher.views.workers.workers
        view[stale] = msgspec.structs.replace(
            view[stale], status="quarantined", quarantined_until=NOW, quarantine_reason="old"
        )  # a quarantine already over (G0 lets it pass), and released in the log
        Runner(dispatcher).drain()
        summary = replay_exact(History(exported(home))).summary()
        summary["recorded"] = [m for m, _ in decisions(home)]
    finally:
        home.close()
    return summary


def test_health_a_dispatcher_read_before_another_process_saved_is_a_minor_finding(
    any_home: Path,
) -> None:
    """Replay re-runs the decision on what it read, and names the difference from the fold
    as a minor finding, never a major one."""
    report = _stale_run(any_home, ("w",), "w", failing=False)

    assert report["worker_health_differs"] == 1
    assert report["drift"] == {"none": 0, "minor": 1, "major": 0}
    assert report["ok"] is True
    [finding] = report["findings"]
    assert finding["drift"] == "minor"
    said = "worker w health status: recorded quarantined, the fold has active"
    assert said in finding["differences"]
    assert "differs from the fold in 1 decision(s)" in replay_text(report)


def test_a_recovery_is_rerun_on_the_health_it_read_of_the_other_workers(any_home: Path) -> None:
    """The last_worker gate (could another worker take over?) reads the other workers'
    status: replay takes it from the recording too, so a stale read is no gate drift."""
    report = _stale_run(any_home, ("a", "b"), "b", failing=True)

    recoveries = [m for m in report["recorded"] if m.intent == "recover_failure"]
    assert recoveries
    blocked = [
        g
        for m in recoveries
        for c in m.candidates
        if c.type == "QUARANTINE"
        for g in c.gates
        if g.gate == "last_worker" and not g.passed
    ]
    assert blocked, "b read as quarantined: no other worker could take over"
    assert report["drift"]["major"] == 0, report["findings"]
    assert report["worker_health_differs"] == len(report["recorded"])


def test_a_simulation_records_health_that_matches_the_fold_everywhere(any_home: Path) -> None:
    """One dispatcher alone: what it read is the fold as of each decision's position, for
    dispatches and recoveries (quarantines included)."""
    home, _ = simulated(any_home, 300, seed=3, epsilon=0.1)
    try:
        made = [m for m, _ in decisions(home)]
        report = replay_exact(History(exported(home))).summary()
    finally:
        home.close()
    assert all(m.observed is not None and m.observed.workers for m in made)
    assert any(m.observed.evidence for m in made if m.observed is not None)
    assert report["worker_health_differs"] == 0
    assert report["drift"] == {"none": len(made), "minor": 0, "major": 0}
