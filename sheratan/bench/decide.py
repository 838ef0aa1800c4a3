"""`bench decide`: the decision engine's CPU per decision, `simulate` end to end, and exact
replay of a simulated log.

Figures, each with its anchor measured in the same run:

- ``decision_cpu``: CPU time of one ``dispatch_job`` decision over 5 candidates (gates, UCB,
  the randomized step, the event recorded and group-committed every 100 decisions), median
  over batches of 100; target <= 100 microseconds (issue 12). Anchor: encoding the same
  DecisionMade event with msgspec alone (the floor of recording it).
- ``simulate_jobs_per_s``: ``simulate`` on the three example workers; target >= 3,000 jobs/s.
  Anchor: a bare loop that only encodes the run's events with msgspec and writes them to a
  file (fsync every 256 jobs, as the simulation commits), i.e. the Python limit.
- ``exact_replay_decisions_per_s``: ``replay_exact`` over a log ``simulate`` made
  (``replay_jobs`` jobs, epsilon 0.2), one pass in this process; target >= 20,000/s.
  Anchor: the msgspec scan of ``bench analytics`` (envelopes and decisions decoded, stats
  computed) over the same log.
- ``exact_replay_2_ranges_decisions_per_cpu_s``: the same log cut as ``replay --workers 2``
  cuts it; the CPU time of each range checked alone in this process, the rate over the slower:
  what two free cores give whatever else runs on the machine. Anchor: the one pass's rate
  per CPU second.
- ``replay_process_pace`` (``_2_workers``): a whole ``replay --exact --all`` CLI process
  (``--workers 1``, ``--workers 2``), events per second of wall time; target >= 0.6x the
  anchor: a bare msgspec decode of the same segment files (``bench store``'s read anchor).
  ``cpu_ratio``: the same ratio in CPU seconds (the process's and its workers'), which a
  loaded machine distorts less than wall time.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from uuid import uuid4

import msgspec

from events import Event, utc_now
from events.decisions import DecisionMade
from projections.jobs import JobState
from projections.workers import WorkerState
from sheratan.app import payload_hash
from sheratan.bench.figures import figure, timed
from sheratan.decide.engine import CandidateSpec
from sheratan.dispatch.service import EngineConfig, build_dispatcher, simulate
from sheratan.home import Home, init_home
from sheratan.recording import Ids, Recorder, WallClock
from sheratan.replay.exact import replay_exact
from sheratan.replay.history import History
from sheratan.replay.parallel import plan
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
        "value <= 100",
        median <= 100,
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


def bench_replay(root: Path, jobs: int) -> dict[str, dict[str, Any]]:
    """Exact replay of a simulated log: in this process (one pass; two ranges), and as whole
    CLI processes with one and two workers."""
    from sheratan.bench.analytics import _msgspec_scan  # duckdb and numpy: only here
    from sheratan.bench.store import _raw_decode

    path = root / "replay"
    init_home(path)
    home = Home.open(path)
    simulate(home, EngineConfig.load(seed=1, epsilon=0.2), load_profiles(EXAMPLE_WORKERS), jobs)
    last = home.ledger.last_position()
    scan_s, scanned = timed(partial(_msgspec_scan, home.ledger, last))
    cpu = time.process_time()
    one_s, report = timed(lambda: replay_exact(History(home.ledger)))
    one_cpu = time.process_time() - cpu
    ranges = plan(1, last, 2, min_per_process=1)
    range_cpu = [
        _cpu(partial(replay_exact, History(home.ledger), check_from=a, check_to=b))
        for a, b in ranges
    ]
    home.close()
    decisions = report.decisions
    cpu = time.process_time()
    decode_s, events = _raw_decode(path)
    decode_cpu = time.process_time() - cpu
    process_s = {n: _replay_process(path, n) for n in (1, 2)}
    pace = events / decode_s
    figures = {
        "exact_replay_decisions_per_s": figure(
            decisions / one_s,
            "decisions/s",
            f"msgspec scan of the log ({scanned['decision_events']} decision events)",
            scanned["count"] / scan_s,
            "value >= 20000",
            decisions / one_s >= 20_000,
            decisions=decisions,
            events=last,
            cpu_seconds=one_cpu,
            decisions_per_cpu_s=decisions / one_cpu,
            drift=report.summary()["drift"],
        ),
        "exact_replay_2_ranges_decisions_per_cpu_s": figure(
            decisions / max(range_cpu),
            "decisions/CPU-s of the slower range",
            "the one pass, decisions/CPU-s",
            decisions / one_cpu,
            None,
            None,
            ranges=ranges,
            range_cpu_seconds=range_cpu,
        ),
    }
    for n, (seconds, cpu_seconds) in process_s.items():
        name = "replay_process_pace" + ("" if n == 1 else f"_{n}_workers")
        figures[name] = figure(
            last / seconds,
            "events/s",
            f"bare msgspec decode of the same segments ({events} lines)",
            pace,
            "ratio >= 0.6",
            last / seconds >= 0.6 * pace,
            seconds=seconds,
            cpu_seconds=cpu_seconds,
            #: On a loaded machine: CPU seconds of the bare decode / of the process(es).
            cpu_ratio=decode_cpu / cpu_seconds,
            decisions=decisions,
        )
    return figures


def _cpu(fn: Callable[[], Any]) -> float:
    """CPU seconds of this process that ``fn()`` took."""
    began = time.process_time()
    fn()
    return time.process_time() - began


def _replay_process(home: Path, workers: int) -> tuple[float, float]:
    """Seconds of a whole ``replay --exact --all`` CLI process (start, imports, open, replay,
    the replay.run record), and the CPU seconds it and its workers took (on a loaded machine
    the wall time also counts the waits for a core); it must find no drift."""
    cli = Path(__file__).resolve().parents[2] / "cli.py"
    command = [sys.executable, str(cli), "replay", "--exact", "--all"]
    command += ["--workers", str(workers), "--home", str(home), "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, check=False)
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        msg = f"replay --exact --all exited {done.returncode}: {done.stderr.decode()[-500:]}"
        raise RuntimeError(msg)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu


def run_decide_bench(
    decisions: int = 5000,
    jobs: int = 5000,
    repeats: int = 3,
    replay_jobs: int = 20_000,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The decision and simulate figures, medians of ``repeats`` runs; the replay figures
    from one log of ``replay_jobs`` simulated jobs; ``progress`` hears what each step does."""
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
        say(f"exact replay of {replay_jobs:,} simulated jobs: in process, in ranges, as CLI runs")
        figures |= bench_replay(root, replay_jobs)
        met = sum(bool(f["met"]) for f in figures.values())
        return {"figures": figures, "targets_met": met}
    finally:
        shutil.rmtree(root, ignore_errors=True)
