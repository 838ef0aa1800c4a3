"""Completing an attempt: the score of the decisions it answers, what they teach, and recovery.

An attempt ends with an event on its job (completed, failed, timed out; or the job cancelled
or quarantined under it), recorded by whoever saw the end: a worker daemon, an in-process
worker, a dispatcher's lease sweep, an operator. Settling reads only the log's state
(``OpenDecisionsView``), so it runs the same however late the end comes and in whichever
dispatcher process: the attempt's open decisions are scored, priors and baselines learn from
the score, and a failed attempt opens a ``recover_failure`` decision. RETRY and FALLBACK
schedule the job's next attempt on the chosen worker (a RETRY after a backoff), QUARANTINE
takes the worker out and sends the job to a new dispatch decision, ABORT ends the job; all
but ABORT are gated once ``max_retries`` is used up.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
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
from events.jobs import JobQueued, JobRetryScheduled
from events.workers import WorkerQuarantined
from projections.jobs import JobState
from projections.workers import WorkerState
from sheratan.chains import followup_events
from sheratan.decide.scoring import baseline_for, score_outcome
from sheratan.decide.trace import Violation, check, encode, trace_record
from sheratan.dispatch.backoff import retry_backoff
from sheratan.dispatch.candidates import DISPATCH, RECOVER, recovery_specs
from sheratan.dispatch.charges import settle_charge
from sheratan.dispatch.context import DispatchContext
from sheratan.dispatch.heal import heal_resolved, heal_taken, is_heal
from sheratan.lifecycle import cascade_cancellations, job_event
from sheratan.streams import baseline_stream, priors_stream
from sheratan.workers.outcome import Outcome

#: Job statuses whose attempt says nothing about the chosen action: its decisions are
#: closed as ``skipped`` and teach the priors nothing.
NOT_ATTEMPTED = frozenset({"cancelled", "quarantined"})


class TraceBreachError(ValueError):
    """A decision record broke decision_trace_v1 and no breaches log was given to keep it."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(
            f"decision record breaks the schema at {violation.path}: {violation.reason}"
        )
        self.violation = violation


def attempt_outcome(job: JobState) -> Outcome:
    """What the job's ended attempt measured, as Score v1 reads it."""
    metrics = job.metrics or Metrics()
    if job.status == "completed":
        return Outcome(
            True,
            metrics.latency_ms,
            metrics.cost,
            metrics.quality,
            metrics.risk,
            result=job.result,
            artifacts=job.artifacts,
        )
    if job.status == "timed_out":
        latency = job.timeout_seconds * 1000.0
        return Outcome(False, latency, error=ErrorInfo("timeout", "the attempt's lease expired"))
    error = ErrorInfo(job.error_code or "error", job.error or "the attempt failed")
    return Outcome(
        False, metrics.latency_ms, metrics.cost, metrics.quality, metrics.risk, error=error
    )


class Settler:
    """Scores ended attempts and opens their recovery decisions."""

    def __init__(
        self,
        context: DispatchContext,
        decide: Callable[..., DecisionMade],
        on_breach: Callable[[dict[str, Any], Violation], object] | None,
    ) -> None:
        self.context = context
        self._decide = decide
        self.on_breach = on_breach
        #: Jobs whose decision could not even be closed within the schema (its record is in
        #: breaches): left open in the log, not settled again by this process.
        self.given_up: set[Any] = set()

    def settle(self, job_id: Any) -> None:
        """Settle the charge of the job's ended attempt, score every open decision of the
        job, then recover a failed or timed-out attempt."""
        views = self.context.views
        job = views.jobs.jobs[job_id]
        settle_charge(self.context, job)
        decisions = views.decisions.of_job(job_id)
        if not decisions:
            return
        if job.status in NOT_ATTEMPTED:
            for made in decisions:
                self.close_unscored(made, f"the job was {job.status} before a result")
            return
        outcome = attempt_outcome(job)
        for made in decisions:
            self.score(made, outcome, job)
        stats = self.context.stats
        if outcome.ok:
            stats.completed += 1
            self._follow_up(job)
            return
        attempt_decision = next((d for d in decisions if d.originator_id == job.decision_id), None)
        failed = views.workers.workers.get(job.worker or "")
        if failed is not None:
            self._recover(job, failed, attempt_decision or decisions[-1])

    def _follow_up(self, job: JobState) -> None:
        """The follow-ups the completed attempt's result asks for: made, or refused."""
        context = self.context
        views = context.views
        context.recorder.record(
            *followup_events(
                job, views.chains, views.jobs, context.chain_limits, context.clock.now()
            )
        )

    # --------------------------------------------------------------- scoring

    def score(self, decision: DecisionMade, outcome: Outcome, job: JobState) -> None:
        """Record the decision's score, then what it teaches: priors and baselines."""
        context = self.context
        intent = decision.intent
        key = decision.candidates[decision.chosen].key
        baseline = baseline_for(context.scoring, context.views.baselines, intent)
        score, breakdown = score_outcome(
            context.scoring,
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
        now = context.clock.now()
        decision_id = decision.originator_id
        scored = DecisionScored(
            originator_id=decision_id,
            originator_version=2,
            timestamp=now,
            status=status,
            metrics=outcome.metrics(job.retry_count),
            score=score,
            breakdown=breakdown,
            error=outcome.error,
            artifacts=outcome.artifacts,
        )
        if not self.record_scored(decision, scored):
            return
        views = context.views
        context.recorder.record(
            PriorsUpdated(
                originator_id=priors_stream(intent, key),
                originator_version=_next_version(views.priors.streams.get((intent, key))),
                timestamp=now,
                intent=intent,
                action_key=key,
                score=score,
                decision_id=decision_id,
            ),
            BaselineUpdated(
                originator_id=baseline_stream(intent),
                originator_version=_next_version(views.baselines.streams.get(intent)),
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
            context.stats.count_dispatch_score(worker, score)

    def close_unscored(self, decision: DecisionMade, reason: str) -> None:
        """Close a decision whose action never ran (all gated, or the job ended under it)."""
        code = "all_gated" if decision.chosen < 0 else "not_scored"
        self.record_scored(
            decision,
            DecisionScored(
                originator_id=decision.originator_id,
                originator_version=2,
                timestamp=self.context.clock.now(),
                status="skipped",
                metrics=Metrics(),
                score=0.0,
                error=ErrorInfo(code, reason),
            ),
        )

    def record_scored(self, decision: DecisionMade, scored: DecisionScored) -> bool:
        """Record the score if the decision's trace record conforms; else send it to breaches.

        An invalid record never enters the main log: its score would poison the priors and
        baselines learned from it.
        """
        record = trace_record(decision, scored)
        violation = check(encode(record))
        if violation is None:
            self.context.recorder.record(scored)
            if is_heal(decision) and decision.job_id is not None:
                job = self.context.views.jobs.jobs[decision.job_id]
                self.context.recorder.record(heal_resolved(decision, scored, job.namespace))
            return True
        self.context.stats.breaches += 1
        if self.on_breach is None:
            raise TraceBreachError(violation)
        self.on_breach(record, violation)
        if scored.status != "skipped":
            reason = f"its score broke decision_trace_v1 at {violation.path} (kept in breaches)"
            self.close_unscored(decision, reason)
        elif decision.job_id is not None:
            self.given_up.add(decision.job_id)
        return False

    # -------------------------------------------------------------- recovery

    def _recover(self, job: JobState, failed: WorkerState, parent: DecisionMade) -> None:
        context = self.context
        views = context.views
        rule = context.engine.gate_policy.quarantine_evidence
        limit = context.engine.gate_policy.worker_max_attempts
        specs = recovery_specs(views.workers, job, failed, rule, limit)
        made = self._decide(
            RECOVER, job, specs, trace=parent.trace_id, parent=parent, depth=parent.depth + 1
        )
        chosen = specs[made.chosen]  # ABORT is never gated
        now = context.clock.now()
        if chosen.type == "ABORT":
            self.score(made, Outcome(False, 0.0, error=ErrorInfo("aborted", made.reason)), job)
            context.stats.failed += 1
            self.cascade(job)
            return
        context.recorder.record(heal_taken(job, made, now))
        if chosen.type == "QUARANTINE":
            state = views.workers.workers[failed.id]
            context.recorder.record(
                WorkerQuarantined(
                    originator_id=state.stream,
                    originator_version=state.version + 1,
                    timestamp=now,
                    reason=f"recover_failure decision {made.originator_id}",
                    until=now + timedelta(seconds=context.engine.gate_policy.quarantine_cooldown_s),
                )
            )
        self._schedule_retry(job, made, chosen.type, chosen.worker, now)

    def _schedule_retry(
        self,
        job: JobState,
        made: DecisionMade,
        action: str,
        worker: WorkerState | None,
        now: datetime,
    ) -> None:
        """The job back in the queue for its next attempt: on ``worker`` (RETRY after its
        backoff, FALLBACK at once) or, after a QUARANTINE, for a new dispatch decision."""
        context = self.context
        wait = 0.0
        jitter = 0.0
        if action == "RETRY":
            policy = context.engine.gate_policy.retry_backoff
            backoff = retry_backoff(policy, context.engine.seed, job.id, job.retry_count)
            wait, jitter = backoff.seconds, backoff.jitter
        context.recorder.record(
            job_event(
                job,
                JobRetryScheduled,
                now,
                retry_count=job.retry_count + 1,
                not_before=now + timedelta(seconds=wait),
                decision_id=made.originator_id,
                worker=worker.id if action != "QUARANTINE" and worker is not None else None,
                backoff_s=wait,
                jitter=jitter,
            )
        )
        context.recorder.record(job_event(context.views.jobs.jobs[job.id], JobQueued, now))

    def cascade(self, ended: JobState) -> None:
        """Cancel, as events, every job that (transitively) depends on ``ended``."""
        jobs = self.context.views.jobs
        now = self.context.clock.now()
        self.context.recorder.record(*cascade_cancellations(jobs, jobs.jobs[ended.id], now))


def _next_version(stream: tuple[Any, int] | None) -> int:
    return 1 if stream is None else stream[1] + 1
