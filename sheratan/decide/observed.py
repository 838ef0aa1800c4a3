"""A decision's one window on the outside world, noted as it is read.

Gates read three things a decision's log position does not fix: the filesystem (G3 follows
symlinks), the health of each candidate worker (G0: status, quarantine, last heartbeat; read
by a dispatcher that another process's heartbeat or result can overtake before its save) and
a worker's recent record (G5). The engine reads them only through a ``Reading``: live, it reads
and notes what it read (``DecisionMade.observed``); given that recording, it answers from it,
so replay re-runs a decision on what the decision saw and never on the live world. The clock
needs no note: the engine's ``now`` is the decision's ``timestamp``.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from events.decisions import Evidence, Observed, PathCheck, WorkerHealth
from projections.workers import WorkerState, WorkersView
from sheratan.decide.gates import IN_PROCESS_TRANSPORTS

Resolver = Callable[[str, str], bool]


def health_of(worker: WorkerState, held: int | None = None) -> WorkerHealth:
    """What G0 reads of a worker (its registration aside: kinds, transport, zone and cost
    only change with a new registration). G0 never asks an in-process worker when it was
    last seen, so that is left out (and a simulation's record stays free of wall-clock time).
    ``held``: the attempts it holds, read for the ``worker_limit`` gate (None without one).
    """
    in_process = worker.transport in IN_PROCESS_TRANSPORTS
    return WorkerHealth(
        worker=worker.id,
        status=worker.status,
        quarantined_until=worker.quarantined_until,
        last_seen=None if in_process else worker.last_seen,
        held=held,
    )


def with_health(state: WorkerState, health: WorkerHealth) -> WorkerState:
    """The worker as it was when ``health`` was read of it."""
    return msgspec.structs.replace(
        state,
        status=health.status,
        quarantined_until=health.quarantined_until,
        last_seen=health.last_seen or state.last_seen,
    )


def as_seen(view: WorkersView, observed: Observed) -> WorkersView:
    """The workers as a decision saw them: the fold, with the health it recorded in place.

    For what a dispatcher reads of workers before the engine (the ``last_worker`` gate of a
    recovery: could another worker take over?), so replay derives it from the recording too."""
    recorded = {w.worker: w for w in observed.workers}
    seen = WorkersView()
    seen.position = view.position
    seen.workers = {
        worker: state if worker not in recorded else with_health(state, recorded[worker])
        for worker, state in view.workers.items()
    }
    seen.attempts, seen.held = view.attempts, view.held  # the worker_limit gate reads these
    return seen


class Reading:
    """The outside inputs of one decision: read live (``recorded`` None) or from a recording.

    An input the recording lacks (a path a changed gate policy now resolves, a worker it did
    not hold) is read live, as for a decision recorded before recordings existed.
    """

    def __init__(self, recorded: Observed | None, resolve: Resolver) -> None:
        self._resolve = resolve
        self._paths: dict[str, bool] = {}
        self._workers: dict[str, WorkerHealth] = {}
        self._evidence: dict[str, Evidence] = {}
        if recorded is not None:
            self._paths = {p.path: p.inside for p in recorded.paths}
            self._workers = {w.worker: w for w in recorded.workers}
            self._evidence = {e.worker: e for e in recorded.evidence}
        self.paths: list[PathCheck] = []
        self.workers: dict[str, WorkerHealth] = {}
        self.evidence: dict[str, Evidence] = {}

    def inside(self, workspace: str, relative: str) -> bool:
        """G3's resolver: whether ``relative`` stays inside ``workspace`` (symlinks followed)."""
        inside = self._paths.get(relative)
        if inside is None:
            inside = self._resolve(workspace, relative)
        self.paths.append(PathCheck(relative, inside))
        return inside

    def worker(self, state: WorkerState, held: int | None) -> tuple[WorkerState, int | None]:
        """The worker as G0 sees it, and the attempts it holds as the ``worker_limit`` gate
        sees them (``held`` read live): the recorded ones, if there are."""
        health = self._workers.get(state.id)
        if health is None:
            health = health_of(state, held)
        else:
            state = with_health(state, health)
            if health.held is None and held is not None:  # recorded before limits existed
                health = msgspec.structs.replace(health, held=held)
        self.workers.setdefault(state.id, health)
        return state, health.held

    def seen(self, evidence: Evidence) -> Evidence:
        """The recent record G5 judges: the recorded one, if there is one."""
        seen = self._evidence.get(evidence.worker, evidence)
        self.evidence.setdefault(seen.worker, seen)
        return seen

    def observed(self) -> Observed:
        """Everything read, in the order it was first read."""
        return Observed(
            paths=tuple(self.paths),
            workers=tuple(self.workers.values()),
            evidence=tuple(self.evidence.values()),
        )
