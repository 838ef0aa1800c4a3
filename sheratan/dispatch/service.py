"""Assembling the live engine for a home: views, policies, transports; dispatch and simulate.

``simulate`` runs the real engine and store (no shortcut path) with simulated workers on
virtual time; a run into an existing home continues it (its priors and baselines carry on).
Its jobs and workers carry the namespace ``SIMULATION``: ``dispatch`` (namespace "") never
runs them, and the simulation never runs a real job nor routes to a real worker.
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec

from events.jobs import JobCancelled, JobCreated, JobQueued
from events.workers import WorkerRegistered
from sheratan.app import payload_hash
from sheratan.decide.engine import DecisionEngine
from sheratan.decide.policy import (
    GatePolicy,
    PolicySnapshot,
    ScoringPolicy,
    load_gates,
    load_scoring,
)
from sheratan.decide.selection import SelectionPolicy
from sheratan.dispatch import DEFAULT_NAME, SIMULATION
from sheratan.dispatch.breaches import BreachLog
from sheratan.dispatch.context import DispatchContext, EngineViews, RunStats
from sheratan.dispatch.gating import SystemPolicy, load_system_policy
from sheratan.dispatch.loop import Dispatcher
from sheratan.dispatch.runner import ROUND_JOBS, RoundLock, Runner, Stop
from sheratan.home import Home
from sheratan.inputs import InvalidInputError
from sheratan.lifecycle import CANCELLABLE, job_event
from sheratan.limits import ChainLimit, load_limits
from sheratan.recording import Clock, Ids, LogSource, Recorder, VirtualClock, WallClock
from sheratan.store.factory import open_ledger
from sheratan.store.files import FileLock
from sheratan.streams import worker_stream
from sheratan.views import (
    ACCOUNTS,
    CHAINS,
    DECISIONS,
    JOBS,
    PRIORS,
    SYSTEM,
    WORKERS,
    baselines_kind,
)
from sheratan.workers.local import LocalTransport
from sheratan.workers.outcome import Transport
from sheratan.workers.simulated import SimulatedTransport, WorkerProfile
from sheratan.workers.webrelay import WebRelay

BUILD_ID = "sheratan-0.1.0"


@dataclass(frozen=True)
class Paid:
    """Who pays for bulk-created jobs (``simulate --payer``), and each job's budget."""

    payer: str | None = None
    budget_micros: int | None = None


#: Jobs no account pays for.
UNPAID = Paid()


class SimulationInterruptedError(Exception):
    """Ctrl-C stopped a simulation; its open jobs were cancelled (as events) first."""

    def __init__(self, cancelled: int) -> None:
        super().__init__(f"interrupted: cancelled {cancelled} open simulated job(s)")
        self.cancelled = cancelled


@dataclass
class EngineConfig:
    """Everything a run is parameterized by (policy files, selection, seed, workspace)."""

    scoring: ScoringPolicy
    gates: GatePolicy
    selection: SelectionPolicy
    seed: int
    workspace: Path
    #: What a result's follow-ups may add to a chain (limits.json's ``chains``).
    chains: ChainLimit
    #: What each system state lets a round do, and the anomaly rules' thresholds.
    system: SystemPolicy = field(default_factory=load_system_policy)

    @classmethod
    def load(
        cls,
        *,
        policy: str = "ucb",
        epsilon: float | None = None,
        c: float | None = None,
        seed: int = 0,
        scoring_path: Path | None = None,
        gates_path: Path | None = None,
        limits_path: Path | None = None,
        workspace: Path | None = None,
        system_path: Path | None = None,
    ) -> EngineConfig:
        """``limits_path``: a limits.json merged over the shipped one; its
        ``workers.max_attempts`` becomes the gate policy's ``worker_max_attempts``."""
        limits = load_limits(limits_path)
        gates = msgspec.structs.replace(
            load_gates(gates_path), worker_max_attempts=limits.workers.max_attempts
        )
        selection = SelectionPolicy.parse(
            policy,
            c=gates.ucb_c if c is None else c,
            epsilon=gates.epsilon if epsilon is None else epsilon,
        )
        return cls(
            load_scoring(scoring_path),
            gates,
            selection,
            seed,
            (workspace or Path.cwd()).resolve(),
            limits.chains,
            load_system_policy(system_path),
        )

    @property
    def snapshot(self) -> PolicySnapshot:
        return PolicySnapshot(self.scoring, self.gates, str(self.workspace))


def load_views(home: Home, scoring: ScoringPolicy) -> EngineViews:
    views = home.views
    return EngineViews(
        jobs=views.current(JOBS),
        workers=views.current(WORKERS),
        priors=views.current(PRIORS),
        baselines=views.current(baselines_kind(scoring.baselines.window)),
        decisions=views.current(DECISIONS),
        chains=views.current(CHAINS),
        accounts=views.current(ACCOUNTS),
        system=views.current(SYSTEM),
    )


def save_views(home: Home, dispatcher: Dispatcher, scoring: ScoringPolicy) -> None:
    """Save the live views, but only when they hold nothing the log does not: after a failed
    flush (or any stop with events still pending) they are left unsaved, and the next open
    folds the log from the last saved position instead."""
    if dispatcher.recorder.pending or dispatcher.recorder.diverged:
        return
    views = dispatcher.views
    home.views.save(JOBS, views.jobs)
    home.views.save(WORKERS, views.workers)
    home.views.save(PRIORS, views.priors)
    home.views.save(baselines_kind(scoring.baselines.window), views.baselines)
    home.views.save(DECISIONS, views.decisions)
    home.views.save(CHAINS, views.chains)
    home.views.save(ACCOUNTS, views.accounts)
    home.views.save(SYSTEM, views.system)


def build_dispatcher(
    home: Home,
    config: EngineConfig,
    *,
    clock: Clock,
    ids: Ids,
    outcomes_rng: random.Random,
    views: EngineViews | None = None,
    namespace: str = "",
    stats: RunStats | None = None,
) -> Dispatcher:
    views = views or load_views(home, config.scoring)
    snapshot = config.snapshot
    home.app.record_policy(snapshot.policy_id, **snapshot.plain)
    transports: dict[str, Transport] = {
        "local": LocalTransport(config.workspace, config.gates.forbidden_path_prefixes),
        "simulated": SimulatedTransport(outcomes_rng),
    }
    engine = DecisionEngine(
        scoring=config.scoring,
        gates=config.gates,
        selection=config.selection,
        workspace=config.workspace,
        rng=random.Random(f"{config.seed}:{views.jobs.position}:select"),
        seed=config.seed,
        build_id=BUILD_ID,
        policy_id=snapshot.policy_id,
    )
    context = DispatchContext(
        views=views,
        recorder=Recorder(home.app, views.all(), source=LogSource(home)),
        engine=engine,
        scoring=config.scoring,
        clock=clock,
        ids=ids,
        chain_limits=config.chains,
        stats=stats or RunStats(),
        namespace=namespace,
    )
    return Dispatcher(
        context,
        transports=transports,
        handoffs={"webrelay": WebRelay(views.workers, home.app)},
        claim_first=frozenset({"local"}),
        system=config.system,
        on_breach=BreachLog(open_ledger(home.path, "breaches")).record,
    )


def dispatch_lock(home: Home) -> RoundLock:
    """The lock every dispatcher of a home holds for a round (see sheratan.dispatch.runner)."""
    return home_lock(home, "dispatch")


def home_lock(home: Home, purpose: str) -> RoundLock:
    """The lock of ``purpose`` shared by every process of the log: a lock file in the home
    folder on an embedded home (one disk); on a PostgreSQL home, whose processes may run on
    several hosts each with a folder of its own, an advisory lock in the database
    (``sheratan.postgres.locks``)."""
    if home.marker.postgres is not None:
        from sheratan.postgres.locks import AdvisoryLock

        return AdvisoryLock(home.app.recorder, purpose)
    return FileLock(home.path / "locks" / f"{purpose}.lock")


def open_runner(home: Home, config: EngineConfig, *, name: str = DEFAULT_NAME) -> Runner:
    """A dispatcher of real work on wall time, run in rounds under the home's dispatch lock,
    tracked as ``dispatcher:<name>``; a lost race loads its views again."""

    def make(stats: RunStats | None = None) -> Dispatcher:
        start = home.log.last_position()
        views = load_views(home, config.scoring)
        config.selection.require_known(_of_namespace(views, ""))
        return build_dispatcher(
            home,
            config,
            clock=WallClock(),
            ids=Ids(),
            outcomes_rng=random.Random(f"{config.seed}:{start}:outcomes"),
            views=views,
            stats=stats,
        )

    return Runner(make(), lock=dispatch_lock(home), tracking=tracking_name(name), reload=make)


def tracking_name(name: str) -> str:
    return f"dispatcher:{name}"


def dispatch(
    home: Home,
    config: EngineConfig,
    *,
    max_jobs: int | None = None,
    name: str = DEFAULT_NAME,
    progress: Callable[[int], None] | None = None,
) -> RunStats:
    """Dispatch ready jobs (up to ``max_jobs`` decisions) on wall time, one save per job."""
    runner = open_runner(home, config, name=name)
    try:
        return runner.drain(max_jobs=max_jobs, progress=progress)
    finally:
        runner.close()
        save_views(home, runner.dispatcher, config.scoring)


def follow(
    home: Home,
    config: EngineConfig,
    stop: Stop,
    *,
    name: str = DEFAULT_NAME,
    batch: int = ROUND_JOBS,
    progress: Callable[[int], None] | None = None,
) -> RunStats:
    """``dispatch --follow``: rounds until ``stop``, woken by every commit to the log."""
    runner = open_runner(home, config, name=name)
    with home.waker() as waker, contextlib.closing(runner):
        return runner.follow(
            stop,
            waker,
            batch=batch,
            save=lambda d: save_views(home, d, config.scoring),
            progress=progress,
        )


def resumes_after(home: Home, name: str = DEFAULT_NAME) -> int | None:
    """The last position dispatcher ``name`` acted on (its tracking record), if any."""
    return home.log.max_tracking_id(tracking_name(name))


def simulate(
    home: Home,
    config: EngineConfig,
    profiles: tuple[WorkerProfile, ...],
    jobs: int,
    progress: Callable[[int], None] | None = None,
    stop: Stop | None = None,
    paid: Paid = UNPAID,
) -> dict[str, Any]:
    """Register the simulated workers (once), create ``jobs`` jobs and dispatch them all, in
    the SIMULATION namespace. With ``paid``, every job names its payer and budget, so its
    attempts are held against and settled on that account as real work's are. ``stop`` (or
    Ctrl-C) cancels every open simulated job, then raises SimulationInterruptedError.
    ``stop`` is looked at between saves, so a stop never lands inside one.

    One simulation runs on a log at a time (a second is refused at once, InvalidInputError):
    two started at one position would draw the same job ids from the same seed. So on a
    PostgreSQL home the lock is the database's, not the folder's: two hosts' folders share
    the log."""
    home.app.check_payer(paid.payer, paid.budget_micros)
    lock = home_lock(home, "simulate")
    try:
        if not lock.try_acquire():
            msg = "another simulate is running on this log: wait for it to end"
            raise InvalidInputError(msg)
        return _simulate(home, config, profiles, jobs, progress, stop, paid)
    finally:
        lock.close()  # closing the lock file releases it


def _simulate(
    home: Home,
    config: EngineConfig,
    profiles: tuple[WorkerProfile, ...],
    jobs: int,
    progress: Callable[[int], None] | None,
    stop: Stop | None,
    paid: Paid,
) -> dict[str, Any]:
    start = home.log.last_position()
    views = load_views(home, config.scoring)
    _check_profile_ids(views, profiles)
    config.selection.require_known({*_of_namespace(views, SIMULATION), *(p.id for p in profiles)})
    ids = Ids(seed=f"{config.seed}:{start}:ids")
    clock = VirtualClock(datetime.now(UTC))
    dispatcher = build_dispatcher(
        home,
        config,
        clock=clock,
        ids=ids,
        outcomes_rng=random.Random(f"{config.seed}:{start}:outcomes"),
        views=views,
        namespace=SIMULATION,
    )
    stop = stop or Stop()
    try:
        stats = _run_simulation(home, dispatcher, profiles, jobs, start, progress, stop, paid)
    except KeyboardInterrupt:
        stop.set()
    if stop.is_set():
        raise SimulationInterruptedError(cancel_simulation(home, clock.now()))
    save_views(home, dispatcher, config.scoring)
    return summary(stats, dispatcher.recorder.recorded)


def _run_simulation(
    home: Home,
    dispatcher: Dispatcher,
    profiles: tuple[WorkerProfile, ...],
    jobs: int,
    start: int,
    progress: Callable[[int], None] | None,
    stop: Stop,
    paid: Paid,
) -> RunStats:
    recorder, clock, ids = dispatcher.recorder, dispatcher.clock, dispatcher.ids
    views = dispatcher.views
    for profile in profiles:
        if profile.id not in views.workers.workers:
            recorder.record(_registration(profile, clock.now()))
    kind = Counter(k for p in profiles for k in p.kinds).most_common(1)[0][0]
    for i in range(jobs):
        job_id = ids.new()
        payload = {"prompt": f"simulated job {start}:{i}"}
        now = clock.now()
        recorder.record(*queued_job(job_id, kind, payload, now, namespace=SIMULATION, paid=paid))
        if (i + 1) % 10_000 == 0:
            recorder.flush()
            if stop.is_set():
                return dispatcher.stats
    recorder.flush()
    with contextlib.closing(Runner(dispatcher, lock=dispatch_lock(home))) as runner:
        return runner.drain(batch=ROUND_JOBS, progress=progress, stop=stop)


def queued_job(
    job_id: UUID,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    *,
    namespace: str = "",
    max_retries: int = 2,
    paid: Paid = UNPAID,
) -> tuple[JobCreated, JobQueued]:
    """A job created and queued, as the two events of one save (for bulk creation, where
    ``job create``'s one save per job would be the bottleneck)."""
    return (
        JobCreated(
            originator_id=job_id,
            originator_version=1,
            timestamp=now,
            kind=kind,
            payload=payload,
            payload_hash=payload_hash(payload),
            max_retries=max_retries,
            namespace=namespace,
            payer=paid.payer,
            budget_micros=paid.budget_micros,
        ),
        JobQueued(originator_id=job_id, originator_version=2, timestamp=now),
    )


def cancel_simulation(home: Home, now: datetime) -> int:
    """Cancel, as events in one save, every simulated job that has not ended; how many.

    The jobs are read afresh from the log (the interrupted run's live views may hold an
    event that never reached it), and its live views are not saved.
    """
    jobs = home.views.current(JOBS).jobs.values()
    reason = "simulation interrupted"
    recorder = Recorder(home.app, [])
    recorder.record(
        *(
            job_event(job, JobCancelled, now, reason=reason)
            for job in jobs
            if job.namespace == SIMULATION and job.status in CANCELLABLE
        )
    )
    recorder.flush()
    return recorder.recorded


def _of_namespace(views: EngineViews, namespace: str) -> set[str]:
    return {w.id for w in views.workers.workers.values() if w.namespace == namespace}


def _check_profile_ids(views: EngineViews, profiles: tuple[WorkerProfile, ...]) -> None:
    """A simulated worker may not take the id of a worker of another namespace."""
    for profile in profiles:
        existing = views.workers.workers.get(profile.id)
        if existing is not None and existing.namespace != SIMULATION:
            msg = (
                f"worker {profile.id!r} is a real worker of this home; "
                "give the simulated worker another id"
            )
            raise InvalidInputError(msg)


def summary(stats: RunStats, events: int) -> dict[str, Any]:
    """The run's figures: jobs, events, mean dispatch score, success rate, per worker."""
    jobs = len(stats.job_ids)
    return {
        "jobs": jobs,
        "dispatches": stats.jobs,
        "events": events,
        "decisions": stats.decisions,
        "mean_score": stats.mean_score,
        "success_rate": stats.completed / jobs if jobs else None,
        "completed": stats.completed,
        "failed": stats.failed,
        "aborted": stats.aborted,
        "breaches": stats.breaches,
        "per_worker": {
            worker: {"chosen": s.chosen, "mean_score": s.mean_score}
            for worker, s in sorted(stats.per_worker.items())
        },
    }


def _registration(profile: WorkerProfile, now: datetime) -> WorkerRegistered:
    fields = msgspec.to_builtins(profile)
    fields.pop("id")
    fields.pop("kinds")
    return WorkerRegistered(
        originator_id=worker_stream(profile.id),
        originator_version=1,
        timestamp=now,
        worker_id=profile.id,
        kinds=profile.kinds,
        transport="simulated",
        cost_hint=profile.cost,
        profile=fields,
        namespace=SIMULATION,
    )
