"""The dispatcher: every job a visible decision and a lease; every ended attempt settled.

Dispatching and completing are separate steps joined by events. For the next ready job
(priority, then FIFO; dependencies completed; a retry's ``not_before`` passed) a
``dispatch_job`` decision chooses a worker among the capable ones and the attempt is leased
(``job.dispatched``, the lease running until ``lease_until``: the attempt's deadline, or one
lease term for a worker that heartbeats and so extends it, see sheratan.workers.report). A
job that a recovery decision scheduled on a chosen worker (RETRY, FALLBACK) is leased to it
without a new decision, while that worker may still take work. The worker reports the
outcome, whenever it comes (``sheratan.workers.report``); then the attempt is settled
(``sheratan.dispatch.settle``).
An expired lease is swept into ``job.timed_out`` and settled the same way.

Workers of the in-process transports (local, simulated) run the attempt right after its
lease, through the same reporting and settling as a worker daemon: ``simulate`` keeps its
virtual time and its determinism. If every candidate of a decision is gated, it ends ABORT
with the reasons and no worker is called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events.decisions import DecisionMade
from events.jobs import JobDispatched, JobQuarantined, JobTimedOut
from projections.jobs import JobState
from projections.workers import WorkerState
from sheratan.decide.engine import CandidateSpec
from sheratan.decide.gates import worker_gates
from sheratan.decide.trace import Violation
from sheratan.dispatch.candidates import (
    DISPATCH,
    capable_workers,
    decision_constraints,
    dispatch_specs,
)
from sheratan.dispatch.charges import hold
from sheratan.dispatch.context import DispatchContext
from sheratan.dispatch.gating import (
    CAUTIOUS,
    SystemPolicy,
    admits,
    leases_allowed,
    selection_in,
)
from sheratan.dispatch.settle import Settler
from sheratan.dispatch.watch import Watch
from sheratan.lifecycle import job_event
from sheratan.workers.outcome import Handoff, Transport, run_attempt
from sheratan.workers.report import claim_event, lease_at_dispatch, outcome_event

BLOCKING_STATUSES = frozenset({"cancelled", "quarantined"})


@dataclass(frozen=True)
class Round:
    """What one round did: dispatch decisions made, attempts settled or collected, and when
    the first retry waiting for its backoff may run (None: none waits)."""

    dispatched: int
    settled: int
    retry_at: datetime | None


class Dispatcher:
    def __init__(
        self,
        context: DispatchContext,
        *,
        transports: dict[str, Transport],
        handoffs: dict[str, Handoff] | None = None,
        claim_first: frozenset[str] = frozenset(),
        constraints: dict[str, Any] | None = None,
        system: SystemPolicy,
        on_breach: Callable[[dict[str, Any], Violation], object] | None = None,
    ) -> None:
        self.context = context
        self.views = context.views
        self.recorder = context.recorder
        self.engine = context.engine
        self.clock = context.clock
        self.ids = context.ids
        self.stats = context.stats
        self.namespace = context.namespace
        #: Workers of these transports run in this process, right after their lease.
        self.transports = transports
        #: Workers of these transports are handed their attempt at its lease, and their
        #: outcomes collected by every round.
        self.handoffs = handoffs or {}
        #: In-process transports whose work touches the world: their lease and claim are
        #: saved before they run, so a save that fails never leaves work done unrecorded.
        self.claim_first = claim_first
        self.constraints = constraints or {}
        self.settler = Settler(context, self._decide, on_breach)
        self.system = system
        self.watch = Watch(context, system)
        #: The selection policy of OPERATIONAL; a cautious state scales it per round.
        self.selection = context.engine.selection

    # ---------------------------------------------------------------- the loop

    def round(self, max_dispatches: int) -> Round:
        """One round over the views as they are: collect handed-off outcomes, settle what
        ended, sweep expired leases, run the anomaly rules, then lease up to ``max_dispatches``
        ready jobs, as few as the system state allows (``sheratan.dispatch.gating``). Records
        only; the caller saves (in one save, so a round is atomic)."""
        settled = self.collect() + self.settle_ended() + self.sweep()
        self.watch.look()
        state = self.watch.state.state
        self.engine.selection = selection_in(self.system, state, self.selection)
        in_flight = self._in_flight() if state in CAUTIOUS else 0
        allowed = leases_allowed(self.system, state, max_dispatches, in_flight)
        dispatched = 0
        retry_at = None
        while dispatched < allowed:
            job, retry_at = self.next_ready_job(state)
            if job is None:
                break
            self.dispatch(job)
            dispatched += 1
        return Round(dispatched, settled, retry_at)

    def collect(self) -> int:
        """Record the outcomes the handoffs collected, then settle their attempts."""
        count = 0
        for handoff in self.handoffs.values():
            for collected in handoff.collect(self.views.jobs, self.clock.now()):
                job = self.views.jobs.jobs[collected.job_id]
                self.recorder.record(
                    outcome_event(
                        job,
                        collected.worker,
                        collected.attempt,
                        collected.outcome,
                        self.clock.now(),
                    )
                )
                count += 1
        return count

    def settle_ended(self) -> int:
        """Settle every attempt of this namespace that ended since it was last looked at."""
        jobs = self.views.jobs.jobs
        ended = [
            job_id
            for job_id in self.views.decisions.to_settle
            if jobs[job_id].namespace == self.namespace and job_id not in self.settler.given_up
        ]
        for job_id in ended:
            self.settler.settle(job_id)
        return len(ended)

    def sweep(self) -> int:
        """Time out every attempt of this namespace whose lease expired; settle each."""
        now = self.clock.now()
        jobs = self.views.jobs.jobs
        expired = [job_id for job_id, until in self._leases() if until < now]
        for job_id in expired:
            job = jobs[job_id]
            self.recorder.record(job_event(job, JobTimedOut, now, attempt=job.attempt))
            self.stats.timed_out += 1
            self.settler.settle(job_id)
        return len(expired)

    def next_lease_expiry(self) -> datetime | None:
        """When the first open lease of this namespace expires (what a follower waits for)."""
        return min((until for _, until in self._leases()), default=None)

    def _leases(self) -> Iterator[tuple[Any, datetime]]:
        """(job id, lease_until) of every open lease of this namespace."""
        jobs = self.views.jobs.jobs
        for job_id in self.views.jobs.leased:
            job = jobs[job_id]
            if job.namespace == self.namespace and job.lease_until is not None:
                yield job_id, job.lease_until

    def handoff_open(self) -> bool:
        """Whether an attempt of this namespace is open on a handoff transport (its outcome
        comes as a file, not as a commit that wakes a follower)."""
        if not self.handoffs:
            return False
        jobs, workers = self.views.jobs.jobs, self.views.workers.workers
        return any(
            jobs[job_id].namespace == self.namespace
            and (worker := workers.get(jobs[job_id].worker or "")) is not None
            and worker.transport in self.handoffs
            for job_id in self.views.jobs.leased
        )

    def _in_flight(self) -> int:
        """Open attempts of this namespace."""
        jobs = self.views.jobs.jobs
        return sum(jobs[job_id].namespace == self.namespace for job_id in self.views.jobs.leased)

    def next_ready_job(self, state: str) -> tuple[JobState | None, datetime | None]:
        """The first queued job of this namespace that may run now in the system ``state``,
        and (when there is none) the earliest time a retry waiting for its backoff may;
        cancels jobs that can never run.

        Dependents are cancelled when their dependency ends (``cascade``); this catches the
        rest: a job created after its dependency had already ended.
        """
        ready, retry_at, doomed = self._scan_queue(state)
        for job, dependency in doomed:
            if self.views.jobs.jobs[job.id].status == "queued":  # an earlier cascade took it
                self.settler.cascade(dependency)
        return ready, retry_at

    def _scan_queue(
        self, system_state: str
    ) -> tuple[JobState | None, datetime | None, list[tuple[JobState, JobState]]]:
        jobs = self.views.jobs.jobs
        now = self.clock.now()
        doomed: list[tuple[JobState, JobState]] = []
        retry_at: datetime | None = None
        for job in self.views.jobs.queued():
            if job.namespace != self.namespace:
                continue  # another namespace's work (real, or a simulation's)
            capable = capable_workers(self.views.workers, job)
            if not capable:
                continue  # no worker runs this kind (yet): it waits
            if self._all_at_limit(self._wanted_workers(job, capable)):
                continue  # the workers it may go to hold their most attempts: it waits
            if not admits(system_state, job):
                continue  # RECOVERY: a job never tried waits for the recovery to end
            waiting = False
            for dependency in job.depends_on:
                state = jobs[dependency]  # create refuses unknown dependencies
                if _can_never_complete(state):
                    doomed.append((job, state))
                    break
                waiting = waiting or state.status != "completed"
            else:
                if waiting:
                    continue
                if job.not_before is not None and job.not_before > now:
                    retry_at = job.not_before if retry_at is None else min(retry_at, job.not_before)
                    continue
                return job, None, doomed
        return None, retry_at, doomed

    def _wanted_workers(self, job: JobState, capable: list[WorkerState]) -> list[WorkerState]:
        """The workers a job may be leased to: the one its open RETRY or FALLBACK chose (which
        waits for that worker rather than run past its limit), else every capable worker."""
        if job.retry_worker is not None and job.decision_id in self.views.decisions.open:
            chosen = self.views.workers.workers.get(job.retry_worker)
            if chosen is not None:
                return [chosen]
        return capable

    def _all_at_limit(self, workers: list[WorkerState]) -> bool:
        """Whether each of ``workers`` holds ``workers.max_attempts`` open attempts (then a
        decision would gate them all and quarantine the job, which only has to wait)."""
        limit = self.context.engine.gate_policy.worker_max_attempts
        if limit is None:
            return False
        held = self.views.workers.held
        return all(held.get(worker.id, 0) >= limit for worker in workers)

    # ------------------------------------------------------------- decisions

    def dispatch(self, job: JobState) -> None:
        """Lease the job's next attempt: to the worker a recovery decision chose, or to the
        one a new dispatch decision chooses (only these count as the run's dispatches)."""
        scheduled = self._scheduled_retry(job)
        if scheduled is not None:
            worker, decision = scheduled
            self._lease(job, worker, decision)
            return
        self.stats.jobs += 1
        self.stats.job_ids.add(job.id)
        limit = self.context.engine.gate_policy.worker_max_attempts
        specs = dispatch_specs(self.views.workers, self.views.priors, job, limit)
        made = self._decide(DISPATCH, job, specs, trace=self.ids.new(), parent=None, depth=0)
        if made.chosen < 0:
            self._abort(job, made)
            return
        self._lease(job, specs[made.chosen].worker, made)  # type: ignore[arg-type]

    def _scheduled_retry(self, job: JobState) -> tuple[WorkerState, DecisionMade] | None:
        """The worker and recovery decision of a RETRY or FALLBACK, while that worker passes
        its gates now; else None (the job gets a new dispatch decision, which the recovery
        decision waits for)."""
        if job.retry_worker is None or job.decision_id is None:
            return None
        decision = self.views.decisions.open.get(job.decision_id)
        worker = self.views.workers.workers.get(job.retry_worker)
        if decision is None or worker is None:
            return None
        constraints = decision_constraints(self.constraints, job, self.views.accounts)
        gates = worker_gates(self.engine.gate_policy, worker, job, constraints, self.clock.now())
        if not all(g.passed for g in gates):
            return None
        return worker, decision

    def _decide(
        self,
        intent: str,
        job: JobState,
        specs: list[CandidateSpec],
        *,
        trace: Any,
        parent: DecisionMade | None,
        depth: int,
    ) -> DecisionMade:
        made = self.engine.decide(
            decision_id=self.ids.new(),
            trace_id=trace,
            parent=parent.originator_id if parent else None,
            depth=depth,
            intent=intent,
            job=job,
            specs=specs,
            priors=self.views.priors,
            constraints=decision_constraints(self.constraints, job, self.views.accounts),
            now=self.clock.now(),
        )
        self.recorder.record(made)
        self.stats.decisions += 1
        return made

    def _abort(self, job: JobState, made: DecisionMade) -> None:
        """Every candidate gated: no worker is called; the job is quarantined with the reasons."""
        now = self.clock.now()
        self.recorder.record(job_event(job, JobQuarantined, now, reason=made.reason))
        self.settler.cascade(job)
        self.settler.close_unscored(made, made.reason)
        self.settler.settle(job.id)  # a recovery decision that waited for this job
        self.stats.aborted += 1

    # -------------------------------------------------------------- attempts

    def _lease(self, job: JobState, worker: WorkerState, decision: DecisionMade) -> None:
        now = self.clock.now()
        term_s = self.engine.gate_policy.lease_term_s
        lease = lease_at_dispatch(worker.transport, job.timeout_seconds, term_s, now)
        self.recorder.record(
            job_event(
                job,
                JobDispatched,
                now,
                worker=worker.id,
                attempt=job.attempt + 1,
                lease_until=lease.until,
                decision_id=decision.originator_id,
                deadline=lease.deadline,
                lease_term_s=lease.term_s,
            )
        )
        hold(self.context, job, worker, decision.originator_id)
        transport = self.transports.get(worker.transport)
        if transport is not None:
            self._run_here(job.id, worker, transport)
            return
        handoff = self.handoffs.get(worker.transport)
        if handoff is not None:
            handoff.send(self.views.jobs.jobs[job.id], worker)

    def _run_here(self, job_id: Any, worker: WorkerState, transport: Transport) -> None:
        """An in-process worker takes the attempt, runs it, reports it; then it is settled."""
        jobs = self.views.jobs.jobs
        self.recorder.record(claim_event(jobs[job_id], self.clock.now()))
        if worker.transport in self.claim_first:
            self.recorder.flush()
        job = jobs[job_id]
        outcome = run_attempt(transport, job, worker)
        self.clock.advance(outcome.latency_ms)
        now = self.clock.now()
        self.recorder.record(outcome_event(jobs[job_id], worker.id, job.attempt, outcome, now))
        self.settler.settle(job_id)


def _can_never_complete(job: JobState) -> bool:
    if job.status in BLOCKING_STATUSES:
        return True
    return job.status == "failed" and job.retry_count >= job.max_retries
