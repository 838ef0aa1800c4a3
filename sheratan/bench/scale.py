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
  the highest dispatch throughput measured (``export --follow`` on a home of its own).

The server is ``--dsn`` (or ``$SHERATAN_BENCH_DSN``); without one a scratch server is started
with scripts/postgres-local.sh and stopped after; without that either, every figure is
skipped with the reason. A figure whose processes cannot run (a dispatcher or the exporter
that ends before it follows the log) is skipped with that process's last line; the others
still run.
"""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from events import Event
from sheratan.app import Sheratan
from sheratan.bench.figures import environment, figure
from sheratan.bench.runtime import CLI, cpu_seconds, queue_and_wait, stop_processes
from sheratan.dispatch.service import EngineConfig, queued_job, simulate
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
#: The exporter-lag load: a save every LOAD_TICK_S; sampled until SETTLE_S after it ends.
LOAD_TICK_S = 0.05
SETTLE_S = 2.0


def run_scale_bench(
    *,
    events_jobs: int = 2_000,
    jobs: int = 2_000,
    dispatchers: int = 3,
    repeats: int = 1,
    load_seconds: float = 10.0,
    dsn: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``events_jobs``: simulated jobs whose events the recorder figure saves; ``jobs``: jobs
    each dispatch run settles; ``dispatchers``: the most dispatcher processes tried;
    ``repeats``: runs of the whole curve (each count's median is kept); ``load_seconds``: how
    long the exporter-lag load lasts."""
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
            sizes = (events_jobs, jobs, dispatchers, repeats, load_seconds)
            _measure(report, server, root, sizes, say)
    except NoServerError as error:
        for name in figure_names(dispatchers):
            report["skipped"].setdefault(name, f"no PostgreSQL server: {error}")
    report["jobs"], report["events_jobs"] = jobs, events_jobs
    return report


def _measure(
    report: dict[str, Any],
    server: str,
    root: Path,
    sizes: tuple[int, int, int, int, float],
    say: Callable[[str], None],
) -> None:
    events_jobs, jobs, dispatchers, repeats, load_seconds = sizes
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
    try:
        curve = _curve(server, root, jobs, dispatchers, repeats, say)
    except FollowerFailedError as error:
        curve = {}
        for name in _curve_names(dispatchers):
            report["skipped"][name] = f"dispatch on PostgreSQL: {error}"
    ceiling = theirs * events_jobs / len(events)  # jobs/s if saving were all a job cost
    _curve_figures(report, curve, ceiling)
    _lag_figure(report, server, root, curve, load_seconds, say)


def _lag_figure(
    report: dict[str, Any],
    server: str,
    root: Path,
    curve: dict[int, float],
    seconds: float,
    say: Callable[[str], None],
) -> None:
    """The exporter's lag at half the highest throughput of the curve (with as many
    dispatchers as gave it), against the 1 s it may take."""
    if not curve:
        report["skipped"]["exporter_lag"] = "no dispatch throughput measured to load it with"
        return
    count = max(curve, key=curve.__getitem__)
    rate = curve[count] / 2
    say(f"exporter lag: {rate:,.0f} jobs/s for {seconds:.0f} s through {count} dispatcher(s)")
    try:
        with fresh_database(server) as database:
            lag = exporter_lag(root / "lag", database, count, rate, seconds)
    except FollowerFailedError as error:
        report["skipped"]["exporter_lag"] = f"export on PostgreSQL: {error}"
        return
    report["figures"]["exporter_lag"] = figure(
        lag, "s", "one second", 1.0, "<= 1 s", lag <= 1.0,
        jobs_per_s=rate, seconds=seconds, dispatchers=count,
    )  # fmt: skip


def _curve(
    server: str, root: Path, jobs: int, dispatchers: int, repeats: int, say: Callable[[str], None]
) -> dict[int, float]:
    """Jobs/s with 1..``dispatchers`` dispatchers, each count's median of ``repeats`` runs;
    the runs go 1, 2, 3, 1, 2, 3… so a load that comes and goes weighs on every count."""
    runs: dict[int, list[float]] = {count: [] for count in range(1, dispatchers + 1)}
    for repeat in range(1, repeats + 1):
        for count in runs:
            say(f"{jobs:,} jobs through {count} dispatcher(s), run {repeat} of {repeats}")
            with fresh_database(server) as database:
                folder = root / f"dispatch-{count}-{repeat}"
                runs[count].append(dispatch_rate(folder, database, count, jobs))
    return {count: statistics.median(rates) for count, rates in runs.items()}


def _curve_figures(report: dict[str, Any], curve: dict[int, float], ceiling: float) -> None:
    """The dispatch curve: each count's jobs/s against one dispatcher's; one dispatcher's
    against ``ceiling``, the jobs/s the bare recorder would save a simulated job's events at."""
    if 1 not in curve:
        return
    one = curve[1]
    plotted = {str(count): rate for count, rate in curve.items()}  # JSON keys are strings
    report["info"]["dispatch_1"] = figure(
        one, "jobs/s", "bare recorder, a job's events", ceiling, None, None, curve=plotted
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
    beforehand, ``insert_events`` alone) into ``bare``: a pair of saves of the same events
    batch after batch, who goes first alternating (``middle_rates``)."""
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
        pairs = []
        # The bench's own data (every event, and every one encoded again for the bare side)
        # is left out of the garbage collector's walks: a full collection set off by either
        # side's allocations would walk it, and the Sheratan side allocates the more.
        gc.collect()
        gc.freeze()
        for number, (batch, stored) in enumerate(zip(batches, encoded, strict=True)):
            bare_first = bool(number % 2)
            before = _bare(bare_app, stored) if bare_first else 0.0
            mine = _by_sheratan(recorder, batch)
            pairs.append((mine, before if bare_first else _bare(bare_app, stored)))
        return middle_rates(pairs, SAVE_EVENTS)
    finally:
        gc.unfreeze()
        home.close()
        bare_app.close()


def middle_rates(pairs: list[tuple[float, float]], events: int) -> tuple[float, float]:
    """Both sides' events/s over the middle half of the pairs (by the ratio of their two
    times): on a shared machine one save in a pair may take half or twice as long as the
    other for reasons of another process, so the quarter of pairs at each end is left out,
    and both rates come from the same saves."""
    ranked = sorted(pairs, key=lambda pair: pair[1] / pair[0])
    quarter = len(ranked) // 4
    kept = ranked[quarter : len(ranked) - quarter]
    total = events * len(kept)
    return total / sum(mine for mine, _ in kept), total / sum(bare for _, bare in kept)


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


class FollowerFailedError(Exception):
    """A follower process (dispatcher, exporter) ended before it followed the log: its
    last line of stderr."""


def dispatch_rate(folder: Path, database: str, count: int, jobs: int) -> float:
    """Jobs per second dispatched and settled by ``count`` ``dispatch --follow`` processes on
    ``database``, each with a home folder of its own; simulated workers run inside them."""
    homes = _hosts(folder, database, count)
    home = Home.open(homes[0])
    try:
        with _followers(_dispatch_commands(homes, folder / "workspace")):
            return queue_and_wait(home, jobs)
    finally:
        home.close()


def _hosts(folder: Path, database: str, count: int) -> list[Path]:
    """``count`` home folders on ``database`` (as on separate hosts), its simulated workers
    registered."""
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
    finally:
        home.close()
    return homes


def _dispatch_commands(homes: list[Path], workspace: Path) -> list[tuple[Path, list[str]]]:
    """One ``dispatch --follow`` per home, named after its host."""
    workspace.mkdir(parents=True)
    return [
        (home, ["dispatch", "--follow", "--name", home.name, "--workspace", str(workspace)])
        for home in homes
    ]


@contextmanager
def _followers(commands: list[tuple[Path, list[str]]]) -> Iterator[None]:
    """Each (home, CLI arguments) as a process, all following before the block; SIGTERM
    after (they stop cleanly), SIGKILL for one that does not within 30 s.

    They start one after the other: processes that open the library's recorders at the same
    moment on one database may fail with "tuple concurrently updated" (each runs its
    ``CREATE OR REPLACE FUNCTION`` at start)."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        for home, arguments in commands:
            errors = home / f"{arguments[0]}.stderr"
            with errors.open("wb") as sink:
                process = subprocess.Popen(
                    [sys.executable, str(CLI), "--home", str(home), *arguments],
                    stdout=subprocess.DEVNULL,
                    stderr=sink,
                )
            started.append(process)
            _wait_following(process, errors)
        yield
    finally:
        stop_processes(started)


def _wait_following(process: subprocess.Popen[bytes], errors: Path) -> None:
    """Until the process says it follows the log and then sleeps (its views loaded: under
    IDLE_CPU_S of CPU over IDLE_LOOK_S); FollowerFailedError if it ends first."""
    deadline = time.monotonic() + START_S
    used = None
    while True:
        if process.poll() is not None:
            lines = errors.read_text(errors="replace").strip().splitlines()
            raise FollowerFailedError(lines[-1] if lines else f"exit {process.returncode}")
        if time.monotonic() > deadline:
            raise FollowerFailedError(f"was not following within {START_S:.0f} s")
        if b" following " in errors.read_bytes():
            now_used = cpu_seconds(process.pid)
            if used is not None and now_used - used < IDLE_CPU_S:
                return
            used = now_used
        time.sleep(IDLE_LOOK_S)


# ----------------------------------------------------------------- exporter lag


def exporter_lag(folder: Path, database: str, count: int, rate: float, seconds: float) -> float:
    """The exporter's worst lag (seconds) while jobs are created at ``rate`` a second for
    ``seconds`` and settled by ``count`` dispatchers: ``export --follow`` runs on a home
    folder of its own (an analytics host); the lag is sampled from its ledger and the
    database (the exporter's ``measure_lag``) until SETTLE_S after the load ends."""
    from sheratan.postgres.exporter import Source, lag_seconds, measure_lag  # needs psycopg

    homes = _hosts(folder, database, count)
    analytics = folder / "analytics"
    target, password = parse_dsn(database)
    init_home(analytics, target, password)
    followers = [
        *_dispatch_commands(homes, folder / "workspace"),
        (analytics, ["export", "--follow"]),
    ]
    load_home, read_home = Home.open(homes[0]), Home.open(analytics)
    try:
        with _followers(followers):
            load = threading.Thread(target=steady_load, args=(load_home, rate, seconds))
            load.start()
            try:
                samples = measure_lag(
                    Source(read_home.app.recorder), read_home.ledger, seconds + SETTLE_S
                )
            finally:
                load.join()
        return lag_seconds(samples)
    finally:
        load_home.close()
        read_home.close()


def steady_load(home: Home, rate: float, seconds: float) -> None:
    """Create noop jobs at ``rate`` a second for ``seconds``: a save every LOAD_TICK_S
    holding the jobs due by then (so a slow save is caught up, not dropped)."""
    recorder = Recorder(home.app, [])
    began = time.monotonic()
    made = 0
    while (elapsed := time.monotonic() - began) < seconds:
        due = int(rate * elapsed) - made
        now = datetime.now(UTC)
        for _ in range(due):
            recorder.record(*queued_job(uuid4(), "noop", {}, now))
        recorder.flush()
        made += due
        time.sleep(max(0.0, LOAD_TICK_S - (time.monotonic() - began - elapsed)))
