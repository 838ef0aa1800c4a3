"""`bench decide`: the decision engine's CPU per decision and `simulate` end to end.

Figures, each with its anchor measured in the same run:

- ``decision_cpu``: CPU time of one ``dispatch_job`` decision over 5 candidates (gates, UCB,
  the randomized step, the event recorded and group-committed every 100 decisions), median
  over batches of 100; target <= 150 microseconds. Anchor: encoding the same DecisionMade
  event with msgspec alone (the floor of recording it).
- ``simulate_jobs_per_s``: ``simulate`` on the three example workers; target >= 3,000 jobs/s.
  Anchor: a bare loop that only encodes the run's events with msgspec and writes them to a
  file (fsync every 256 jobs, as the simulation commits), i.e. the Python limit.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import msgspec

from events import Event, utc_now
from events.decisions import DecisionMade
from projections.jobs import JobState
from projections.workers import WorkerState
from sheratan.app import payload_hash
from sheratan.bench.figures import figure
from sheratan.decide.engine import CandidateSpec
from sheratan.dispatch.service import EngineConfig, build_dispatcher, simulate
from sheratan.home import Home, init_home
from sheratan.recording import Ids, Recorder, WallClock
from sheratan.views import EventReader
from sheratan.workers.simulated import EXAMPLE_WORKERS, load_profiles

BATCH = 100


def _worker(worker_id: str) -> WorkerState:
    now = utc_now()
    profile = {
        "success": 0.9,
        "latency_ms": {"p50": 300, "p95": 900},
        "cost": 1.0,
        "quality": 0.8,
        "risk": 0.0,
    }
    return WorkerState(
        id=worker_id,
        stream=uuid4(),
        version=1,
        kinds=("llm_call",),
        transport="simulated",
        cost_hint=1.0,
        profile=profile,
        registered_at=now,
        last_seen=now,
    )


def _job(i: int) -> JobState:
    payload = {"prompt": f"bench job {i}", "options": {"temperature": 0.2, "files": ["docs/a.md"]}}
    now = utc_now()
    return JobState(
        id=uuid4(),
        version=2,
        status="queued",
        kind="llm_call",
        payload=payload,
        payload_hash=payload_hash(payload),
        priority="normal",
        timeout_seconds=60.0,
        depends_on=(),
        idempotency_key=None,
        max_retries=2,
        created_at=now,
        updated_at=now,
    )


def bench_decision(root: Path, decisions: int) -> dict[str, Any]:
    init_home(root / "decide")
    home = Home.open(root / "decide")
    dispatcher = build_dispatcher(
        home,
        EngineConfig.load(workspace=root),
        clock=WallClock(),
        ids=Ids(seed=1),
        outcomes_rng=random.Random(1),
    )
    engine, views = dispatcher.engine, dispatcher.views
    recorder = Recorder(home.app, [])
    workers = [_worker(f"w{i}") for i in range(5)]
    specs = [CandidateSpec("ROUTE", f"ROUTE:{w.id}", w, {"worker": w.id}) for w in workers]
    jobs = [_job(i) for i in range(decisions)]
    per_decision: list[float] = []
    made: DecisionMade | None = None
    for start in range(0, decisions, BATCH):
        began = time.thread_time_ns()
        for job in jobs[start : start + BATCH]:
            made = engine.decide(
                decision_id=uuid4(),
                trace_id=uuid4(),
                parent=None,
                depth=0,
                intent="dispatch_job",
                job=job,
                specs=specs,
                priors=views.priors,
                constraints={},
                now=utc_now(),
            )
            recorder.record(made)
        recorder.flush()
        per_decision.append((time.thread_time_ns() - began) / 1000 / BATCH)
    assert made is not None
    encode = msgspec.json.encode
    began = time.thread_time_ns()
    for _ in range(decisions):
        encode(made)
    floor = (time.thread_time_ns() - began) / 1000 / decisions
    median = statistics.median(per_decision)
    home.close()
    return figure(
        median,
        "us CPU per decision",
        "msgspec encode of the same event",
        floor,
        "value <= 150",
        median <= 150,
    )


def bench_simulate(root: Path, jobs: int) -> dict[str, Any]:
    init_home(root / "simulate")
    home = Home.open(root / "simulate")
    profiles = load_profiles(EXAMPLE_WORKERS)
    began = time.perf_counter()
    report = simulate(home, EngineConfig.load(seed=1), profiles, jobs)
    elapsed = time.perf_counter() - began
    rate = report["jobs"] / elapsed
    events: list[Event] = [e for _, e in EventReader().events(home.ledger)]
    home.close()
    per_job = len(events) / jobs
    encode = msgspec.json.encode
    path = root / "bare.jsonl"
    began = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        step = max(1, int(256 * per_job))
        for at in range(0, len(events), step):
            os.write(fd, b"".join(encode(e) + b"\n" for e in events[at : at + step]))
            os.fsync(fd)
    finally:
        os.close(fd)
    bare_rate = jobs / (time.perf_counter() - began)
    return figure(
        rate,
        "jobs/s",
        "bare loop: msgspec-encode and write the run's events",
        bare_rate,
        "value >= 3000",
        rate >= 3000,
        events_per_job=per_job,
        mean_score=report["mean_score"],
    )


def run_decide_bench(
    decisions: int = 5000,
    jobs: int = 5000,
    repeats: int = 3,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Both figures, medians of ``repeats`` runs; ``progress`` hears what each step does."""
    say = progress or (lambda _message: None)
    root = Path(tempfile.mkdtemp(prefix="sheratan-bench-decide-"))
    try:
        runs: dict[str, list[dict[str, Any]]] = {"decision_cpu": [], "simulate_jobs_per_s": []}
        for i in range(repeats):
            say(f"{decisions:,} dispatch decisions, 5 candidates: round {i + 1}/{repeats}")
            runs["decision_cpu"].append(bench_decision(root / f"r{i}", decisions))
            say(f"simulate {jobs:,} jobs against a bare encode+write: round {i + 1}/{repeats}")
            runs["simulate_jobs_per_s"].append(bench_simulate(root / f"r{i}", jobs))
        figures = {}
        for name, series in runs.items():
            series.sort(key=lambda f: f["value"])
            figures[name] = series[len(series) // 2] | {"runs": [f["value"] for f in series]}
        return {"figures": figures, "targets_met": sum(f["met"] for f in figures.values())}
    finally:
        shutil.rmtree(root, ignore_errors=True)
