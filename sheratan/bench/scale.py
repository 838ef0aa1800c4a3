"""``bench scale``: Sheratan on PostgreSQL, against anchors in the same run (issue 13).

- ``recorder_events_per_s``: events per second saved by Sheratan through the library's
  PostgreSQL recorder (``Recorder.flush``: the dispatcher's path, Sheratan's mapper encoding
  each event, then ``insert_events``), against the same recorder driven bare with the same
  events encoded beforehand. The events are a real simulation's (decisions, leases,
  outcomes, settlements), saved in batches of a dispatch round's size. The two sides take
  turns batch by batch, each in a fresh database of its own, so a load that comes and goes
  weighs on both alike.
- ``dispatch_2_vs_1`` and ``dispatch_3_vs_1``: jobs dispatched and settled per second by
  2 and 3 ``dispatch --follow`` processes on one database against 1, each with a home folder
  of its own (as on separate hosts), each run in a fresh database. The workers are simulated
  and run inside the dispatchers (the cheapest worker that still makes real rounds:
  decisions, leases, outcomes and settlements saved in one save per round).
- ``exporter_lag``: how far the JSONL exporter trails the database at a steady load of half
  the highest dispatch throughput measured (skipped until the exporter exists).

The server is ``--dsn`` (or ``$SHERATAN_BENCH_DSN``); without one a scratch server is started
with scripts/postgres-local.sh and stopped after; without that either, every figure is
skipped with the reason. A figure that cannot run (dispatch not yet on PostgreSQL) is
skipped with its one-line reason; the others still run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from events import Event
from sheratan.app import Sheratan
from sheratan.bench.figures import environment, figure
from sheratan.bench.runtime import CLI, cpu_seconds, queue_and_wait
from sheratan.dispatch.service import EngineConfig, simulate
from sheratan.home import Home, init_home
from sheratan.postgres.scratch import NoServerError, fresh_database, scratch_server
from sheratan.postgres.target import parse_dsn
from sheratan.recording import LogSource, Recorder
from sheratan.workers.simulated import EXAMPLE_WORKERS, load_profiles

#: Where ``bench scale`` finds its server when no --dsn is given.
DSN_ENV = "SHERATAN_BENCH_DSN"
#: Events per save of the recorder figure: about what one dispatch round of ROUND_JOBS jobs
#: saves (a simulated job makes some eleven events).
SAVE_EVENTS = 2_000
#: The simulated workers the dispatchers run in-process (always succeed, so every job
#: settles in the round that leases it).
WORKERS = 4
SIMULATED_PROFILE = {"success": 1.0, "latency_ms": {"p50": 1.0, "p95": 2.0}, "cost": 0.0,
                     "quality": 1.0}  # fmt: skip
#: How long the bench waits for a dispatcher to start following.
START_S = 60.0
#: A dispatcher is ready once it spends less than IDLE_CPU_S of CPU over IDLE_LOOK_S.
IDLE_LOOK_S = 0.2
IDLE_CPU_S = 0.02


def run_scale_bench(
    *,
    events_jobs: int = 2_000,
    jobs: int = 2_000,
    dispatchers: int = 3,
    dsn: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``events_jobs``: simulated jobs whose events the recorder figure saves; ``jobs``: jobs
    each dispatch run settles; ``dispatchers``: the most dispatcher processes tried."""
    say = progress or (lambda _: None)
    report: dict[str, Any] = {
        "figures": {},
        "info": {},
        "skipped": {},
        "environment": environment(("eventsourcing", "psycopg", "msgspec")),
    }
    try:
        with ExitStack() as stack:
            server = stack.enter_context(_server(dsn, say))
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sheratan-scale-")))
            _measure(report, server, root, events_jobs, jobs, dispatchers, say)
    except NoServerError as error:
        for name in figure_names(dispatchers):
            report["skipped"].setdefault(name, f"no PostgreSQL server: {error}")
    report["jobs"], report["events_jobs"] = jobs, events_jobs
    return report


def _measure(
    report: dict[str, Any],
    server: str,
    root: Path,
    events_jobs: int,
    jobs: int,
    dispatchers: int,
    say: Callable[[str], None],
) -> None:
    say(f"simulate {events_jobs:,} jobs for their events")
    events = simulated_events(root / "simulated", events_jobs)
    if len(events) < SAVE_EVENTS:
        msg = f"{events_jobs} simulated jobs made {len(events)} events: fewer than one save"
        raise ValueError(msg)
    say(f"save {len(events):,} events by Sheratan and bare, in turns")
    with fresh_database(server) as by_sheratan, fresh_database(server) as bare:
        mine, theirs = recorder_rates(root / "recorder", by_sheratan, bare, events)
    report["figures"]["recorder_events_per_s"] = figure(
        mine, "events/s", "the same recorder, bare (encoded beforehand)", theirs,
        ">= 0.9x", mine >= 0.9 * theirs, events=len(events), save_events=SAVE_EVENTS,
    )  # fmt: skip
    curve: dict[int, float] = {}
    for count in range(1, dispatchers + 1):
        say(f"{jobs:,} jobs through {count} dispatcher(s)")
        try:
            with fresh_database(server) as database:
                curve[count] = dispatch_rate(root / f"dispatch-{count}", database, count, jobs)
        except DispatcherFailedError as error:
            for name in _curve_names(dispatchers):
                report["skipped"][name] = f"dispatch on PostgreSQL: {error}"
            break
    ceiling = theirs * events_jobs / len(events)  # jobs/s if saving were all a job cost
    _curve_figures(report, curve, ceiling)
    report["skipped"]["exporter_lag"] = "exporter not built"


def _curve_figures(report: dict[str, Any], curve: dict[int, float], ceiling: float) -> None:
    """The dispatch curve: each count's jobs/s against one dispatcher's; one dispatcher's
    against ``ceiling``, the jobs/s the bare recorder would save a simulated job's events at."""
    if 1 not in curve:
        return
    one = curve[1]
    report["info"]["dispatch_1"] = figure(
        one, "jobs/s", "bare recorder, a job's events", ceiling, None, None, curve=dict(curve)
    )
    for count, rate in curve.items():
        if count == 1:
            continue
        target, met = (">= 1.5x", rate >= 1.5 * one) if count == 2 else (None, None)
        report["figures"][f"dispatch_{count}_vs_1"] = figure(
            rate, "jobs/s", "1 dispatcher", one, target, met, dispatchers=count
        )


def figure_names(dispatchers: int) -> list[str]:
    """Every figure the bench reports (measured, or skipped with a reason)."""
    return ["recorder_events_per_s", *_curve_names(dispatchers), "exporter_lag"]


def _curve_names(dispatchers: int) -> list[str]:
    return [f"dispatch_{count}_vs_1" for count in range(2, dispatchers + 1)]


@contextmanager
def _server(dsn: str | None, say: Callable[[str], None]) -> Iterator[str]:
    """The server's DSN: the one given, ``$SHERATAN_BENCH_DSN``, or a scratch one. A DSN
    given that is malformed or does not answer is bad input (one line), not a skip."""
    given = dsn or os.environ.get(DSN_ENV)
    if given:
        target, password = parse_dsn(given)
        target.check_reachable(password)
        yield given
        return
    say("start a scratch PostgreSQL (scripts/postgres-local.sh)")
    with scratch_server() as started:
        yield started


# ------------------------------------------------------------------- the recorder


def simulated_events(home_path: Path, jobs: int) -> list[Event]:
    """The events a simulation of ``jobs`` jobs saves (what a home's init saved left out):
    Sheratan's real mix of jobs, decisions, leases, outcomes and settlements."""
    init_home(home_path)
    home = Home.open(home_path)
    try:
        start = home.log.last_position()
        simulate(home, EngineConfig.load(epsilon=0.0), load_profiles(EXAMPLE_WORKERS), jobs)
        return [event for _, event in LogSource(home).events(start + 1, home.log.last_position())]
    finally:
        home.close()


def recorder_rates(
    folder: Path, by_sheratan: str, bare: str, events: list[Event]
) -> tuple[float, float]:
    """Events per second saved by Sheratan (a PostgreSQL home's ``Recorder.flush``) into the
    database ``by_sheratan``, and by the same recorder class driven bare (events encoded
    beforehand, ``insert_events`` alone) into ``bare``. The sides take turns batch by batch
    (who goes first alternates); each side's rate is from its median batch, so a spike of
    another process's load on one batch moves neither."""
    target, password = parse_dsn(by_sheratan)
    init_home(folder, target, password)
    home = Home.open(folder)
    bare_target, bare_password = parse_dsn(bare)
    bare_app = Sheratan(env=bare_target.env(bare_password))
    try:
        recorder = Recorder(home.app, [])
        full = len(events) - len(events) % SAVE_EVENTS
        batches = [events[i : i + SAVE_EVENTS] for i in range(0, full, SAVE_EVENTS)]
        encoded = [[bare_app.mapper.to_stored_event(e) for e in batch] for batch in batches]
        mine, theirs = [], []
        for number, (batch, stored) in enumerate(zip(batches, encoded, strict=True)):
            if number % 2:
                theirs.append(_bare(bare_app, stored))
            mine.append(_by_sheratan(recorder, batch))
            if not number % 2:
                theirs.append(_bare(bare_app, stored))
        return SAVE_EVENTS / statistics.median(mine), SAVE_EVENTS / statistics.median(theirs)
    finally:
        home.close()
        bare_app.close()


def _by_sheratan(recorder: Recorder, batch: list[Event]) -> float:
    began = time.perf_counter()
    recorder.record(*batch)
    recorder.flush()
    return time.perf_counter() - began


def _bare(app: Sheratan, stored: list[Any]) -> float:
    began = time.perf_counter()
    app.recorder.insert_events(stored)
    return time.perf_counter() - began


# --------------------------------------------------------------------- dispatch


class DispatcherFailedError(Exception):
    """A dispatcher process ended before it followed the log (its last line of stderr)."""


def dispatch_rate(folder: Path, database: str, count: int, jobs: int) -> float:
    """Jobs per second dispatched and settled by ``count`` ``dispatch --follow`` processes on
    ``database``, each with a home folder of its own; simulated workers run inside them."""
    target, password = parse_dsn(database)
    homes = [folder / f"host-{number}" for number in range(1, count + 1)]
    for path in homes:
        init_home(path, target, password)
    home = Home.open(homes[0])
    try:
        for number in range(1, WORKERS + 1):
            home.app.register_worker(
                f"sim-{number}", ("noop",), "simulated", profile=SIMULATED_PROFILE
            )
        with _dispatchers(homes, folder / "workspace"):
            return queue_and_wait(home, jobs)
    finally:
        home.close()


@contextmanager
def _dispatchers(homes: list[Path], workspace: Path) -> Iterator[None]:
    """One ``dispatch --follow`` per home, each following before the block; SIGTERM after."""
    workspace.mkdir(parents=True)
    started: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for number, home in enumerate(homes, 1):
            errors = home / "dispatch.stderr"
            with errors.open("wb") as sink:
                process = subprocess.Popen(
                    [sys.executable, str(CLI), "--home", str(home), "dispatch", "--follow",
                     "--name", f"host-{number}", "--workspace", str(workspace)],
                    stdout=subprocess.DEVNULL, stderr=sink,
                )  # fmt: skip
            started.append((process, errors))
        for process, errors in started:
            _wait_following(process, errors)
        yield
    finally:
        for process, _ in started:
            process.terminate()
        for process, _ in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_following(process: subprocess.Popen[bytes], errors: Path) -> None:
    """Until the dispatcher follows the log and sleeps (its views loaded: it spent under
    IDLE_CPU_S of CPU over IDLE_LOOK_S); DispatcherFailedError if it ends first."""
    deadline = time.monotonic() + START_S
    used = None
    while True:
        if process.poll() is not None:
            lines = errors.read_text(errors="replace").strip().splitlines()
            raise DispatcherFailedError(lines[-1] if lines else f"exit {process.returncode}")
        if time.monotonic() > deadline:
            raise DispatcherFailedError(f"was not following within {START_S:.0f} s")
        if b" following " in errors.read_bytes():
            now_used = cpu_seconds(process.pid)
            if used is not None and now_used - used < IDLE_CPU_S:
                return
            used = now_used
        time.sleep(IDLE_LOOK_S)
