"""The worker daemon (``worker run``): a process of its own that claims and runs its attempts.

It registers (again, if its id exists) with transport ``process``, heartbeats (which also
extends the leases of the attempts it holds, see sheratan.workers.report: every
``--heartbeat`` seconds, and every third of a lease term while it holds attempts), and
follows the log. For every attempt leased to it that nobody has started, it records
``job.started`` (the claim) before running it, so a daemon that restarts never runs an
attempt twice: an attempt started before it died is left to time out (its lease is not
extended: the daemon runs it no more) and go to recovery. It runs the local kinds inside
its workspace, in up to ``concurrency`` threads, and records each outcome
(``job.completed``/``job.failed``, or ``job.result_late`` once the lease is gone).

Only this module's main thread touches the log and the views; the threads run attempts and
hand their outcomes back. A save that loses a version race to another process (a
dispatcher sweeping an expired lease, an operator cancelling) is a re-read, never an error:
a lost claim is someone else's attempt now; a lost outcome is recorded again on the fresh
state, late if the lease is gone.

It sleeps until a commit of any process (sheratan.store.wake), an attempt of its own ends,
a heartbeat is due or a signal comes: idle, it uses next to no CPU.

SIGTERM or Ctrl-C: it stops claiming and waits for what it runs, up to a grace period; an
attempt still running then is handed back (nothing recorded: its lease expires). SIGKILL
needs nothing: the leases expire, within a term, since nothing extends them.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from events import Event
from events.jobs import JobCompleted, JobFailed, JobResultLate
from projections.jobs import JobState, JobsView
from projections.workers import WorkerState
from sheratan.decide.policy import load_gates
from sheratan.home import Home
from sheratan.inputs import InvalidInputError, check_kinds
from sheratan.recording import LogSource, Recorder, ViewsDivergedError, WallClock
from sheratan.store.wake import Waker
from sheratan.views import JOBS
from sheratan.workers import DEFAULT_GRACE_S, DEFAULT_HEARTBEAT_S
from sheratan.workers.local import LocalTransport
from sheratan.workers.outcome import Outcome, run_attempt
from sheratan.workers.report import (
    beat_interval,
    claim_event,
    extensions,
    outcome_event,
    unstarted,
)
from sheratan.workers.signals import stop_on_signals
from sheratan.workers.wire import MAX_RUNNING

#: The kinds a daemon runs itself (with the local transport, inside its workspace).
DAEMON_KINDS = frozenset({"noop", "file_read", "file_write", "patch_apply"})
MAX_CONCURRENCY = MAX_RUNNING
#: The highest price per attempt a daemon may ask (units of account).
MAX_PRICE = 1e9
#: Saves in a row that may lose a version race before a step waits for the next loop.
MAX_RACES_PER_STEP = 8


@dataclass(frozen=True)
class DaemonConfig:
    worker_id: str
    kinds: tuple[str, ...]
    concurrency: int = 1
    workspace: Path = field(default_factory=Path.cwd)
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    grace_s: float = DEFAULT_GRACE_S
    #: What one attempt costs (its cost hint, and the cost it reports): what a paid job's
    #: payer is held and charged; 0 for a worker that charges nothing.
    price: float = 0.0


@dataclass
class DaemonStats:
    """What a daemon did: attempts claimed, outcomes recorded by kind, attempts handed back,
    and saves lost to another process (re-read each time)."""

    claimed: int = 0
    completed: int = 0
    failed: int = 0
    late: int = 0
    handed_back: int = 0
    lost_races: int = 0

    def line(self, worker_id: str) -> str:
        return (
            f"worker {worker_id} stopped: {self.claimed} attempt(s) claimed, "
            f"{self.completed} completed, {self.failed} failed, {self.late} late, "
            f"{self.handed_back} handed back"
        )


def check_config(config: DaemonConfig) -> DaemonConfig:
    """The config with its workspace resolved; InvalidInputError naming what is wrong."""
    check_kinds(config.kinds)
    unknown = sorted(set(config.kinds) - DAEMON_KINDS)
    if unknown:
        msg = f"a worker daemon runs {', '.join(sorted(DAEMON_KINDS))}, not {', '.join(unknown)}"
        raise InvalidInputError(msg)
    if not 1 <= config.concurrency <= MAX_CONCURRENCY:
        msg = f"concurrency must be 1 to {MAX_CONCURRENCY}, not {config.concurrency}"
        raise InvalidInputError(msg)
    timeout_s = load_gates().heartbeat_timeout_s
    if not 0 < config.heartbeat_s <= timeout_s / 2:
        msg = (
            f"heartbeat must be over 0 and at most half the gates' heartbeat_timeout_s "
            f"({timeout_s:g} s), not {config.heartbeat_s:g}"
        )
        raise InvalidInputError(msg)
    if not 0 <= config.grace_s <= 3600:
        msg = f"grace must be 0 to 3600 seconds, not {config.grace_s:g}"
        raise InvalidInputError(msg)
    if not 0 <= config.price <= MAX_PRICE:
        msg = f"price must be 0 to {MAX_PRICE:g}, not {config.price:g}"
        raise InvalidInputError(msg)
    workspace = config.workspace.expanduser().resolve()
    if not workspace.is_dir():
        msg = f"workspace {workspace} is not a directory"
        raise InvalidInputError(msg)
    return DaemonConfig(
        config.worker_id,
        config.kinds,
        config.concurrency,
        workspace,
        config.heartbeat_s,
        config.grace_s,
        config.price,
    )


class WorkerDaemon:
    def __init__(self, home: Home, config: DaemonConfig, waker: Waker) -> None:
        self.home = home
        self.config = config
        #: Woken by every commit, by the thread of an attempt that ended, and by a signal.
        self.waker = waker
        self.clock = WallClock()
        gates = load_gates()
        self.transport = LocalTransport(config.workspace, gates.forbidden_path_prefixes)
        self.stats = DaemonStats()
        self.finished: queue.SimpleQueue[tuple[UUID, int, Outcome]] = queue.SimpleQueue()
        #: Attempts running in a thread of this process: job id -> attempt.
        self.running: dict[UUID, int] = {}
        #: Outcomes of ended attempts not yet saved.
        self.unreported: list[tuple[UUID, int, Outcome]] = []
        self.worker: WorkerState | None = None
        #: When the last heartbeat was (monotonic seconds).
        self.last_beat = time.monotonic()
        self.jobs = JobsView()
        self.recorder = Recorder(home.app, [])

    # --------------------------------------------------------------- the loop

    def run(
        self, stop: threading.Event, on_start: Callable[[], object] | None = None
    ) -> DaemonStats:
        """Register, then claim, run and report until ``stop`` is set; then drain.
        ``on_start`` is called once registered (to say so)."""
        self.worker = self._register()
        self._load()
        if on_start is not None:
            on_start()
        self.last_beat = time.monotonic()
        while not stop.is_set():
            # Look for new leases after every wake-up, not only when this catch-up folded
            # something: a heartbeat's catch-up or a save folds others' events too, and a
            # lease folded there would otherwise wait unclaimed (scanning the open leases
            # is cheap).
            self.recorder.catch_up()
            self._report()
            self._claim()
            self.waker.wait(max(0.0, self._beat_when_due() - time.monotonic()))
        self._drain()
        return self.stats

    def _drain(self) -> None:
        """Stop claiming; report what ends within the grace period; hand back the rest."""
        deadline = time.monotonic() + self.config.grace_s
        while self.running and time.monotonic() < deadline:
            wake = min(deadline, self._beat_when_due())
            self.waker.wait(max(0.0, wake - time.monotonic()))
            self.recorder.catch_up()
            self._report()
        for _ in range(MAX_RACES_PER_STEP):
            if not self.unreported and self.finished.empty():
                break
            self._report()
        self.stats.handed_back = len(self.running)

    # ------------------------------------------------------------ the steps

    def _register(self) -> WorkerState:
        config = self.config
        return register_process_worker(self.home, config.worker_id, config.kinds, config.price)

    def _load(self) -> None:
        """The jobs view from the log, and a recorder over it (again after a lost race)."""
        self.jobs, self.recorder = follow_jobs(self.home)

    def _claim(self) -> None:
        """Claim (one save) and start the attempts leased to this worker that nobody started,
        as many as there are free threads."""
        free = self.config.concurrency - len(self.running)
        if free <= 0:
            return
        now = self.clock.now()
        mine = list(unstarted(self.jobs, self.config.worker_id, now, self.running))[:free]
        if not mine:
            return
        self.recorder.record(*(claim_event(job, now) for job in mine))
        try:
            self.recorder.flush()
        except ViewsDivergedError:
            self.stats.lost_races += 1
            self._load()  # someone else wrote one of these jobs: look at them afresh
            self.waker.wake()  # and look again at once
            return
        assert self.worker is not None
        for job in mine:
            started = self.jobs.jobs[job.id]
            self.running[job.id] = started.attempt
            self.stats.claimed += 1
            thread = threading.Thread(
                target=self._execute, args=(started, self.worker), daemon=True
            )
            thread.start()

    def _execute(self, job: JobState, worker: WorkerState) -> None:
        """In a thread of its own: run the attempt and hand the outcome to the main thread."""
        outcome = run_attempt(self.transport, job, worker)
        if self.config.price:
            outcome = dataclasses.replace(outcome, cost=self.config.price)
        self.finished.put((job.id, job.attempt, outcome))
        self.waker.wake()

    def _report(self) -> None:
        """Record the outcomes of the attempts that ended (one save)."""
        while not self.finished.empty():
            self.unreported.append(self.finished.get())
        if not self.unreported:
            return
        now = self.clock.now()
        events = [
            outcome_event(self.jobs.jobs[job_id], self.config.worker_id, attempt, outcome, now)
            for job_id, attempt, outcome in self.unreported
        ]
        self.recorder.record(*events)
        try:
            self.recorder.flush()
        except ViewsDivergedError:
            self.stats.lost_races += 1
            self._load()  # a sweep or an operator came first: record them on the fresh state
            return
        for (job_id, _, _), event in zip(self.unreported, events, strict=True):
            self.running.pop(job_id, None)
            self._count(event)
        self.unreported.clear()

    def _count(self, event: Event) -> None:
        if isinstance(event, JobCompleted):
            self.stats.completed += 1
        elif isinstance(event, JobFailed):
            self.stats.failed += 1
        elif isinstance(event, JobResultLate):
            self.stats.late += 1

    def _beat_when_due(self) -> float:
        """Heartbeat if one is due; when the next one is (monotonic seconds)."""
        interval = beat_interval(self.config.heartbeat_s, self._held())
        if time.monotonic() >= self.last_beat + interval:
            self._heartbeat()
            self.last_beat = time.monotonic()
            interval = beat_interval(self.config.heartbeat_s, self._held())
        return self.last_beat + interval

    def _held(self) -> list[JobState]:
        """The attempts leased to this worker (running here, or yet to be claimed)."""
        jobs = self.jobs.jobs
        me = self.config.worker_id
        return [jobs[job_id] for job_id in self.jobs.leased if jobs[job_id].worker == me]

    def _heartbeat(self) -> None:
        """Record that the worker is alive, and extend the leases of what it holds."""
        try:
            self.home.app.heartbeat(self.config.worker_id)
        except IntegrityError:
            self.stats.lost_races += 1  # the worker's stream moved: the next beat reads it
        self.recorder.catch_up()
        events = extensions(self.jobs, self.config.worker_id, self.running, self.clock.now())
        if not events:
            return
        self.recorder.record(*events)
        try:
            self.recorder.flush()
        except ViewsDivergedError:
            self.stats.lost_races += 1
            self._load()  # a sweep or an operator came first: the next beat looks again


def register_process_worker(
    home: Home, worker_id: str, kinds: tuple[str, ...], price: float = 0.0
) -> WorkerState:
    """Register ``worker_id`` with transport ``process`` (again, if it exists), unless it is a
    worker of a simulation's namespace; its state after."""
    app = home.app
    try:
        existing: WorkerState | None = app.get_worker(worker_id)
    except LookupError:
        existing = None
    if existing is not None and existing.namespace:
        msg = f"worker {worker_id!r} belongs to the {existing.namespace} namespace"
        raise InvalidInputError(msg)
    app.register_worker(worker_id, kinds, "process", cost_hint=price, again=True)
    return app.get_worker(worker_id)


def follow_jobs(home: Home) -> tuple[JobsView, Recorder]:
    """The jobs view as of the end of the log, and a recorder that keeps it following the
    log (``catch_up``) and saves claims and outcomes through it."""
    jobs = home.views.current(JOBS)
    views: list[Any] = [jobs]
    topics = frozenset(cls.TOPIC for cls in JobsView.FOLDS)
    return jobs, Recorder(home.app, views, source=LogSource(home, topics))


def run_worker(
    home: Home, config: DaemonConfig, on_start: Callable[[], object] | None = None
) -> DaemonStats:
    """Run a worker daemon in this process until SIGTERM or Ctrl-C (handled, no traceback)."""
    config = check_config(config)
    stop = threading.Event()
    # Registered before the daemon reads the log: no commit after its read goes unheard.
    with home.waker() as waker, stop_on_signals(stop, waker.wake):
        return WorkerDaemon(home, config, waker).run(stop, on_start)
