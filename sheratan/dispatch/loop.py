"""The dispatch loop: every job a visible decision, every attempt scored and learned from.

For the next ready job (priority, then FIFO; dependencies completed) a ``dispatch_job``
decision chooses a worker among the capable ones. The attempt is recorded (dispatched,
started, completed or failed), then the decision's score, the priors update and the baseline
update. A failed attempt opens a ``recover_failure`` decision: RETRY on the same worker,
FALLBACK to another, QUARANTINE the worker (the job goes back to the queue), or ABORT; all but
ABORT are gated once ``max_retries`` is used up. A recovery decision is scored by the job's
next attempt. If every candidate of a decision is gated, it ends ABORT with the reasons and no
worker is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from events.decisions import (
    BaselineUpdated,
    DecisionMade,
    DecisionScored,
    ErrorInfo,
    Metrics,
    PriorsUpdated,
    ResultStatus,
)
from events.jobs import (
    JobCompleted,
    JobDispatched,
    JobFailed,
    JobQuarantined,
    JobQueued,
    JobRetryScheduled,
    JobStarted,
)
from events.workers import WorkerQuarantined
from projections.baselines import BaselinesView
from projections.jobs import JobState, JobsView
from projections.priors import PriorsView
from projections.workers import WorkerState, WorkersView
from sheratan.decide.engine import CandidateSpec, DecisionEngine
from sheratan.decide.policy import ScoringPolicy
from sheratan.decide.scoring import baseline_for, score_outcome
from sheratan.decide.trace import Violation, check, encode, trace_record
from sheratan.dispatch.candidates import (
    DISPATCH,
    RECOVER,
    capable_workers,
    decision_constraints,
    dispatch_specs,
    recovery_specs,
)
from sheratan.dispatch.recording import Clock, Ids, Recorder
from sheratan.lifecycle import cascade_cancellations, job_event
from sheratan.streams import baseline_stream, priors_stream
from sheratan.workers.outcome import Outcome, Transport, run_attempt

BLOCKING_STATUSES = frozenset({"cancelled", "quarantined"})


class TraceBreachError(ValueError):
    """A decision record broke decision_trace_v1 and no breaches log was given to keep it."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(
            f"decision record breaks the schema at {violation.path}: {violation.reason}"
        )
        self.violation = violation


@dataclass
class EngineViews:
    """The live read models the loop decides on; the recorder folds every event into them."""

    jobs: JobsView
    workers: WorkersView
    priors: PriorsView
    baselines: BaselinesView

    def all(self) -> list[Any]:
        return [self.jobs, self.workers, self.priors, self.baselines]


@dataclass
class WorkerStats:
    chosen: int = 0
    score_sum: float = 0.0

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / self.chosen if self.chosen else None


@dataclass
class RunStats:
    """What one run of the loop did."""

    jobs: int = 0
    decisions: int = 0
    completed: int = 0
    failed: int = 0
    aborted: int = 0
    dispatch_scores: list[float] = field(default_factory=list)
    per_worker: dict[str, WorkerStats] = field(default_factory=dict)
    chosen_sequence: list[str] = field(default_factory=list)
    breaches: int = 0
    job_ids: set[Any] = field(default_factory=set)

    @property
    def mean_score(self) -> float | None:
        scores = self.dispatch_scores
        return sum(scores) / len(scores) if scores else None


class Dispatcher:
    def __init__(
        self,
        *,
        views: EngineViews,
        recorder: Recorder,
        engine: DecisionEngine,
        scoring: ScoringPolicy,
        transports: dict[str, Transport],
        clock: Clock,
        ids: Ids,
        quarantine_cooldown_s: float = 300.0,
        constraints: dict[str, Any] | None = None,
        on_breach: Callable[[dict[str, Any], Violation], object] | None = None,
        namespace: str = "",
    ) -> None:
        self.views = views
        self.recorder = recorder
        self.engine = engine
        self.scoring = scoring
        self.transports = transports
        self.clock = clock
        self.ids = ids
        self.quarantine_cooldown = timedelta(seconds=quarantine_cooldown_s)
        self.constraints = constraints or {}
        self.on_breach = on_breach
        #: The only jobs this dispatcher takes: "" real work, else one simulation's.
        self.namespace = namespace
        self.stats = RunStats()
        self._pending_recovery: dict[Any, DecisionMade] = {}

    # ---------------------------------------------------------------- the loop

    def run(
        self,
        *,
        max_jobs: int | None = None,
        flush_every: int = 1,
        progress: Callable[[int], None] | None = None,
    ) -> RunStats:
        """Dispatch ready jobs until none is left (or ``max_jobs``), flushing every N jobs."""
        try:
            while max_jobs is None or self.stats.jobs < max_jobs:
                job = self.next_ready_job()
                if job is None:
                    break
                self.dispatch(job)
                self.stats.jobs += 1
                self.stats.job_ids.add(job.id)
                if self.stats.jobs % flush_every == 0:
                    self.recorder.flush()
                if progress is not None:
                    progress(self.stats.jobs)
        finally:
            self.recorder.flush()
        return self.stats

    def next_ready_job(self) -> JobState | None:
        """The first queued job of this dispatcher's namespace whose dependencies completed;
        cancels jobs that can never run.

        Dependents are cancelled when their dependency ends (``_cascade``); this catches the
        rest: a job created after its dependency had already ended.
        """
        ready, doomed = self._scan_queue()
        for job, dependency in doomed:
            if self.views.jobs.jobs[job.id].status == "queued":  # an earlier cascade took it
                self._cascade(dependency)
        return ready

    def _scan_queue(self) -> tuple[JobState | None, list[tuple[JobState, JobState]]]:
        jobs = self.views.jobs.jobs
        doomed: list[tuple[JobState, JobState]] = []
        for job in self.views.jobs.queued():
            if job.namespace != self.namespace:
                continue  # another namespace's work (real, or a simulation's)
            if not self._capable_workers(job):
                continue  # no worker runs this kind (yet): it waits
            waiting = False
            for dependency in job.depends_on:
                state = jobs[dependency]  # create refuses unknown dependencies
                if _can_never_complete(state):
                    doomed.append((job, state))
                    break
                waiting = waiting or state.status != "completed"
            else:
                if not waiting:
                    return job, doomed
        return None, doomed

    def _cascade(self, ended: JobState) -> None:
        """Cancel, as events, every job that (transitively) depends on ``ended``."""
        self.recorder.record(*cascade_cancellations(self.views.jobs, ended, self.clock.now()))

    # ------------------------------------------------------------- decisions

    def dispatch(self, job: JobState) -> None:
        specs = dispatch_specs(self.views.workers, self.views.priors, job)
        made = self._decide(DISPATCH, job, specs, trace=self.ids.new(), parent=None, depth=0)
        if made.chosen < 0:
            self._abort(job, made)
            return
        self._attempt(job, specs[made.chosen].worker, made)  # type: ignore[arg-type]

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
            constraints=decision_constraints(self.constraints, job),
            now=self.clock.now(),
        )
        self.recorder.record(made)
        self.stats.decisions += 1
        return made

    def _abort(self, job: JobState, made: DecisionMade) -> None:
        """Every candidate gated: no worker is called; the job is quarantined with the reasons."""
        now = self.clock.now()
        self.recorder.record(job_event(job, JobQuarantined, now, reason=made.reason))
        self._cascade(self.views.jobs.jobs[job.id])
        self._record_scored(
            made,
            DecisionScored(
                originator_id=made.originator_id,
                originator_version=2,
                timestamp=now,
                status="skipped",
                metrics=Metrics(),
                score=0.0,
                error=ErrorInfo("all_gated", made.reason),
            ),
        )
        self.stats.aborted += 1

    # -------------------------------------------------------------- attempts

    def _attempt(self, job: JobState, worker: WorkerState, decision: DecisionMade) -> None:
        jobs = self.views.jobs.jobs
        now = self.clock.now()
        lease_until = now + timedelta(seconds=job.timeout_seconds)
        self.recorder.record(
            job_event(
                job,
                JobDispatched,
                now,
                worker=worker.id,
                attempt=job.attempt + 1,
                lease_until=lease_until,
                decision_id=decision.originator_id,
            )
        )
        job = jobs[job.id]
        self.recorder.record(job_event(job, JobStarted, now, worker=worker.id, attempt=job.attempt))
        job = jobs[job.id]
        outcome = run_attempt(self.transports[worker.transport], job, worker)
        self.clock.advance(outcome.latency_ms)
        now = self.clock.now()
        if outcome.ok:
            self.recorder.record(job_event(job, JobCompleted, now, result=outcome.result or {}))
            self.stats.completed += 1
        else:
            error = outcome.error or ErrorInfo("error", "the attempt failed")
            self.recorder.record(
                job_event(job, JobFailed, now, error=error.message, code=error.code)
            )
        job = jobs[job.id]
        self._score(decision, outcome, job)
        pending = self._pending_recovery.pop(job.id, None)
        if pending is not None:
            self._score(pending, outcome, job)
        if not outcome.ok:
            self._recover(job, worker, decision)

    def _score(self, decision: DecisionMade, outcome: Outcome, job: JobState) -> None:
        """Record the decision's score, then what it teaches: priors and baselines."""
        intent = decision.intent
        key = decision.candidates[decision.chosen].key
        baseline = baseline_for(self.scoring, self.views.baselines, intent)
        score, breakdown = score_outcome(
            self.scoring,
            baseline,
            ok=outcome.ok,
            quality=outcome.quality,
            retries=job.retry_count,
            latency_ms=outcome.latency_ms,
            cost=outcome.cost,
            risk=outcome.risk,
        )
        status: ResultStatus = (
            ("recovered" if intent == RECOVER else "success") if outcome.ok else "failed"
        )
        now = self.clock.now()
        decision_id = decision.originator_id
        scored = DecisionScored(
            originator_id=decision_id,
            originator_version=2,
            timestamp=now,
            status=status,
            metrics=Metrics(
                latency_ms=outcome.latency_ms,
                cost=outcome.cost,
                retries=job.retry_count,
                risk=outcome.risk,
                quality=outcome.quality,
            ),
            score=score,
            breakdown=breakdown,
            error=outcome.error,
            artifacts=outcome.artifacts,
        )
        if not self._record_scored(decision, scored):
            return
        self.recorder.record(
            PriorsUpdated(
                originator_id=priors_stream(intent, key),
                originator_version=self._next_prior_version(intent, key),
                timestamp=now,
                intent=intent,
                action_key=key,
                score=score,
                decision_id=decision_id,
            ),
            BaselineUpdated(
                originator_id=baseline_stream(intent),
                originator_version=self._next_baseline_version(intent),
                timestamp=now,
                intent=intent,
                action_key=key,
                latency_ms=outcome.latency_ms,
                cost=outcome.cost,
                decision_id=decision_id,
            ),
        )
        if intent == DISPATCH:
            worker = decision.candidates[decision.chosen].params.get("worker", key)
            stats = self.stats.per_worker.setdefault(worker, WorkerStats())
            stats.chosen += 1
            stats.score_sum += score
            self.stats.dispatch_scores.append(score)
            self.stats.chosen_sequence.append(worker)

    def _record_scored(self, decision: DecisionMade, scored: DecisionScored) -> bool:
        """Record the score if the decision's trace record conforms; else send it to breaches.

        An invalid record never enters the main log: its score would poison the priors and
        baselines learned from it.
        """
        record = trace_record(decision, scored)
        violation = check(encode(record))
        if violation is None:
            self.recorder.record(scored)
            return True
        self.stats.breaches += 1
        if self.on_breach is None:
            raise TraceBreachError(violation)
        self.on_breach(record, violation)
        return False

    # -------------------------------------------------------------- recovery

    def _recover(self, job: JobState, failed: WorkerState, parent: DecisionMade) -> None:
        failed = self.views.workers.workers.get(failed.id, failed)  # as of now, as replay sees it
        rule = self.engine.gate_policy.quarantine_evidence
        specs = recovery_specs(self.views.workers, job, failed, rule)
        made = self._decide(
            RECOVER, job, specs, trace=parent.trace_id, parent=parent, depth=parent.depth + 1
        )
        chosen = specs[made.chosen]  # ABORT is never gated
        now = self.clock.now()
        if chosen.type == "ABORT":
            self._score(made, Outcome(False, 0.0, error=ErrorInfo("aborted", made.reason)), job)
            self.stats.failed += 1
            self._cascade(job)
            return
        if chosen.type == "QUARANTINE":
            state = self.views.workers.workers[failed.id]
            self.recorder.record(
                WorkerQuarantined(
                    originator_id=state.stream,
                    originator_version=state.version + 1,
                    timestamp=now,
                    reason=f"recover_failure decision {made.originator_id}",
                    until=now + self.quarantine_cooldown,
                )
            )
        jobs = self.views.jobs.jobs
        self.recorder.record(
            job_event(job, JobRetryScheduled, now, retry_count=job.retry_count + 1)
        )
        self.recorder.record(job_event(jobs[job.id], JobQueued, now))
        if chosen.type == "QUARANTINE":
            self._pending_recovery[job.id] = made  # scored by the job's next attempt
            return
        self._attempt(jobs[job.id], chosen.worker, made)  # type: ignore[arg-type]

    # --------------------------------------------------------------- helpers

    def _capable_workers(self, job: JobState) -> list[WorkerState]:
        return capable_workers(self.views.workers, job)

    def _next_prior_version(self, intent: str, key: str) -> int:
        stream = self.views.priors.streams.get((intent, key))
        return 1 if stream is None else stream[1] + 1

    def _next_baseline_version(self, intent: str) -> int:
        stream = self.views.baselines.streams.get(intent)
        return 1 if stream is None else stream[1] + 1


def _can_never_complete(job: JobState) -> bool:
    if job.status in BLOCKING_STATUSES:
        return True
    return job.status == "failed" and job.retry_count >= job.max_retries
