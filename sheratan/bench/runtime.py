"""``bench runtime``: the job system across processes, against its anchors in the same run.

- Latency from creating a job to a worker daemon starting it (``dispatch --follow`` and two
  ``worker run`` processes on an embedded home), against a pipe round trip between two
  processes: the floor of any cross-process hand-off. The start is read from the log: the
  worker's ``job.completed`` time less the run's own latency, so it includes the claim's
  save (the worker starts only once its claim is durable).
- End-to-end throughput of noop jobs with one dispatcher and two workers, against the
  in-process ``simulate`` rate of the same number of jobs.
- CPU of an idle dispatcher and an idle worker, as a share of one core.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from events.jobs import JobCompleted
from sheratan.bench.figures import environment, figure
from sheratan.dispatch.service import EngineConfig, queued_job, simulate
from sheratan.home import Home, init_home
from sheratan.recording import LogSource, Recorder
from sheratan.store.wake import Waker
from sheratan.views import WORKERS
from sheratan.workers.simulated import EXAMPLE_WORKERS, load_profiles

CLI = Path(__file__).resolve().parents[2] / "cli.py"
_ECHO = "import os\nwhile (b := os.read(0, 1)):\n    os.write(1, b)\n"
#: Attempts each worker daemon runs at once (its claims and outcomes are saved together).
WORKER_THREADS = 16
#: How long the idle processes are watched.
IDLE_S = 5.0
#: How long the bench waits for anything the processes should do before giving up.
WAIT_S = 120.0


def run_runtime_bench(
    *, samples: int = 200, jobs: int = 2_000, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    say = progress or (lambda _: None)
    with tempfile.TemporaryDirectory(prefix="sheratan-bench-runtime-") as tmp:
        root = Path(tmp)
        say("pipe round trips, fsyncs")
        pipe_us = _pipe_round_trip_us(1_000)
        fsync_ms = _fsync_ms(root, 200)
        say(f"simulate {jobs:,} jobs in-process")
        simulate_rate = _simulate_rate(root / "simulate", jobs)
        home = root / "home"
        init_home(home)
        with _processes(home, root / "workspace") as pids:
            opened = Home.open(home)
            say(f"{samples} jobs one at a time: create -> worker start")
            latencies = _latencies_ms(opened, samples)
            say(f"idle CPU over {IDLE_S:.0f} s")
            idle = _idle_cpu(pids)
            say(f"{jobs:,} noop jobs end to end")
            rate = queue_and_wait(opened, jobs)
            opened.close()
    p50 = statistics.median(latencies)
    p99 = _percentile(latencies, 0.99)
    pipe_ms = pipe_us / 1000
    figures = {
        "create_to_start_p50": figure(
            p50, "ms", "pipe round trip", pipe_ms, "p50 <= 5 ms", p50 <= 5.0
        ),
        "create_to_start_p99": figure(
            p99, "ms", "pipe round trip", pipe_ms, "p99 <= 50 ms", p99 <= 50.0
        ),
        "create_to_start_p50_in_fsyncs": figure(p50, "ms", "append + fsync", fsync_ms, None, None),
        "end_to_end_jobs_per_s": figure(
            rate,
            "jobs/s",
            "simulate, in-process",
            simulate_rate,
            ">= 0.5x",
            rate >= 0.5 * simulate_rate,
        ),
        "idle_dispatcher_cpu": figure(
            idle["dispatcher"] * 100,
            "% of a core",
            "one core",
            100.0,
            "<= 1%",
            idle["dispatcher"] <= 0.01,
        ),
        "idle_worker_cpu": figure(
            idle["worker"] * 100, "% of a core", "one core", 100.0, "<= 1%", idle["worker"] <= 0.01
        ),
    }
    return {
        "samples": samples,
        "jobs": jobs,
        "figures": figures,
        "environment": environment(("eventsourcing", "msgspec")),
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _pipe_round_trip_us(rounds: int) -> float:
    """The median round trip of one byte to a child process and back."""
    child = subprocess.Popen(
        [sys.executable, "-c", _ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
    )
    assert child.stdin is not None and child.stdout is not None
    times = []
    try:
        for _ in range(rounds):
            began = time.perf_counter_ns()
            child.stdin.write(b"x")
            child.stdout.read(1)
            times.append((time.perf_counter_ns() - began) / 1000)
    finally:
        child.stdin.close()
        child.wait()
    return statistics.median(times)


def _fsync_ms(folder: Path, rounds: int) -> float:
    """The median time of appending a line and fsyncing it on the home's disk: a job's way
    from create to start holds three (the create, the lease, the worker's claim)."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    times = []
    try:
        for _ in range(rounds):
            began = time.perf_counter_ns()
            os.write(fd, b"x" * 200 + b"\n")
            os.fsync(fd)
            times.append((time.perf_counter_ns() - began) / 1e6)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times)


def _simulate_rate(home: Path, jobs: int) -> float:
    init_home(home)
    opened = Home.open(home)
    began = time.perf_counter()
    simulate(opened, EngineConfig.load(epsilon=0.0), load_profiles(EXAMPLE_WORKERS), jobs)
    elapsed = time.perf_counter() - began
    opened.close()
    return jobs / elapsed


@contextmanager
def _processes(home: Path, workspace: Path) -> Iterator[dict[str, list[int]]]:
    """One ``dispatch --follow`` and two ``worker run`` processes, stopped with SIGTERM."""
    workspace.mkdir()
    base = [sys.executable, str(CLI), "--home", str(home)]
    started = [
        subprocess.Popen([*base, "worker", "run", f"w{i}", "--kinds", "noop",
                          "--concurrency", str(WORKER_THREADS), "--workspace", str(workspace)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in (1, 2)
    ]  # fmt: skip
    try:
        _wait_for(lambda: _registered(home) >= 2, "the workers to register")
        started.insert(
            0,
            subprocess.Popen(
                [*base, "dispatch", "--follow", "--workspace", str(workspace)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        )
        yield {"dispatcher": [started[0].pid], "worker": [p.pid for p in started[1:]]}
    finally:
        stop_processes(started)


def stop_processes(started: list[subprocess.Popen[Any]]) -> None:
    """SIGTERM every process a bench started, then wait for each; one that has not ended
    after 30 s is killed (a bench never leaves a follower behind)."""
    for process in started:
        process.terminate()
    for process in started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _registered(home: Path) -> int:
    opened = Home.open(home)
    try:
        return len(opened.views.as_of(WORKERS, opened.ledger.last_position()).workers)
    finally:
        opened.close()


def _wait_for(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench runtime: gave up waiting for {what}")
        time.sleep(0.05)


def _latencies_ms(home: Home, samples: int) -> list[float]:
    """Create noop jobs one at a time; for each, the time until a worker started it."""
    latencies = []
    with Waker(home.ledger) as waker:
        for _ in range(samples):
            created = datetime.now(UTC)
            job_id = home.app.create_job("noop", {})
            completed = _completion(home, waker, job_id)
            started = completed.timestamp.timestamp() - (
                completed.metrics.latency_ms / 1000 if completed.metrics else 0.0
            )
            latencies.append((started - created.timestamp()) * 1000)
    return latencies


def _completion(home: Home, waker: Waker, job_id: UUID) -> JobCompleted:
    deadline = time.monotonic() + WAIT_S
    while True:
        for event in home.app.repository.event_store.get(job_id):
            if isinstance(event, JobCompleted):
                return event
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench runtime: job {job_id} did not complete")
        waker.wait(1.0)


def _idle_cpu(pids: dict[str, list[int]]) -> dict[str, float]:
    """Each role's CPU share of one core while nothing happens (the worst of its processes)."""
    before = {pid: cpu_seconds(pid) for group in pids.values() for pid in group}
    time.sleep(IDLE_S)
    after = {pid: cpu_seconds(pid) for pid in before}
    return {
        role: max((after[pid] - before[pid]) / IDLE_S for pid in group)
        for role, group in pids.items()
    }


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def queue_and_wait(home: Home, jobs: int, kind: str = "noop") -> float:
    """Queue ``jobs`` jobs of ``kind`` in bulk saves and time them until the last completed:
    jobs per second, on any home whose dispatchers and workers run elsewhere."""
    recorder = Recorder(home.app, [])
    ids = [uuid4() for _ in range(jobs)]
    began = time.perf_counter()
    for start in range(0, jobs, 1_000):
        now = datetime.now(UTC)
        for job_id in ids[start : start + 1_000]:
            recorder.record(*queued_job(job_id, kind, {}, now))
        recorder.flush()
    _wait_for_completions(home, set(ids))
    return jobs / (time.perf_counter() - began)


def _wait_for_completions(home: Home, waiting: set[UUID]) -> None:
    """Follow the log's completions (decoding nothing else) until every job has one."""
    source = LogSource(home, frozenset({JobCompleted.TOPIC}))
    seen = 0
    deadline = time.monotonic() + WAIT_S
    with home.waker() as waker:
        while waiting:
            last = source.last_position()
            for _, event in source.events(seen + 1, last):
                waiting.discard(event.originator_id)
            seen = last
            if time.monotonic() > deadline:
                msg = f"{len(waiting)} job(s) did not complete within {WAIT_S:.0f} s"
                raise TimeoutError(msg)
            if waiting:
                waker.wait(1.0)
