"""The candidate actions of each decision the dispatcher opens, as pure functions of state.

The live loop and replay build candidates with the same functions, so a replayed decision
sees exactly the candidates (and extra gates) the recorded one saw, given the views as of
its position.
"""

from __future__ import annotations

from typing import Any

from events.decisions import GateResult
from projections.accounts import AccountsView
from projections.jobs import JobState
from projections.priors import PriorsView
from projections.workers import WorkerState, WorkersView
from sheratan.decide.engine import MAX_CANDIDATES, CandidateSpec
from sheratan.decide.gates import evidence
from sheratan.decide.policy import QuarantineEvidence

DISPATCH = "dispatch_job"
RECOVER = "recover_failure"


def capable_workers(workers: WorkersView, job: JobState) -> list[WorkerState]:
    """Workers of the job's namespace that run its kind, by id (whatever their status: gates
    judge that). A real job never goes to a simulated worker, nor a simulated job to a real one.
    """
    return sorted(
        (
            w
            for w in workers.workers.values()
            if job.kind in w.kinds and w.namespace == job.namespace
        ),
        key=lambda w: w.id,
    )


def decision_constraints(
    base: dict[str, Any], job: JobState, accounts: AccountsView
) -> dict[str, Any]:
    """The run's constraints, overridden by the job payload's ``constraints`` object; for a
    paid job also its ``funds``: the payer, its available amount and the job's budget (what
    the budget gate holds each candidate's estimate against, recorded with the decision)."""
    constraints = dict(base)
    job_constraints = job.payload.get("constraints")
    if isinstance(job_constraints, dict):
        constraints.update(job_constraints)
    if job.payer is not None:
        account = accounts.accounts.get(job.payer)
        constraints["funds"] = {
            "payer": job.payer,
            "available_micros": account.available_micros if account is not None else 0,
            "budget_micros": job.budget_micros,
        }
    return constraints


def _held(workers: WorkersView, worker: WorkerState, max_attempts: int | None) -> int | None:
    """The attempts ``worker`` holds, read only under a limit (the engine's ``worker_limit``)."""
    return None if max_attempts is None else workers.held.get(worker.id, 0)


def dispatch_specs(
    workers: WorkersView, priors: PriorsView, job: JobState, max_attempts: int | None = None
) -> list[CandidateSpec]:
    """ROUTE to each capable worker; past MAX_CANDIDATES, the ones with the best priors."""
    specs = [
        CandidateSpec(
            "ROUTE", f"ROUTE:{w.id}", w, {"worker": w.id}, held=_held(workers, w, max_attempts)
        )
        for w in capable_workers(workers, job)
    ]
    if len(specs) > MAX_CANDIDATES:
        specs.sort(key=lambda s: -priors.get(DISPATCH, s.key).mean_score)
        specs = specs[:MAX_CANDIDATES]
    return specs


def recovery_specs(
    workers: WorkersView,
    job: JobState,
    failed: WorkerState,
    rule: QuarantineEvidence,
    max_attempts: int | None = None,
) -> list[CandidateSpec]:
    """RETRY on the failed worker, FALLBACK to others, QUARANTINE it, or ABORT.

    All but ABORT are gated once ``max_retries`` is used up; QUARANTINE also when no other
    active worker could take over; the engine also gates it on the worker's recent record
    (G5_evidence, on ``evidence``), and gates ABORT while a reversible candidate is open.
    """
    retries_left = job.retry_count < job.max_retries
    retry_gate = GateResult(
        "retries", retries_left, None if retries_left else f"all {job.max_retries} retries used"
    )
    others = [w for w in capable_workers(workers, job) if w.id != failed.id]
    takeover = any(w.status == "active" for w in others)
    last_worker_gate = GateResult(
        "last_worker", takeover, None if takeover else "no other worker could take over"
    )
    specs = [
        CandidateSpec(
            "RETRY",
            f"RETRY:{failed.id}",
            failed,
            {"worker": failed.id},
            (retry_gate,),
            held=_held(workers, failed, max_attempts),
        )
    ]
    specs += [
        CandidateSpec(
            "FALLBACK",
            f"FALLBACK:{w.id}",
            w,
            {"worker": w.id},
            (retry_gate,),
            held=_held(workers, w, max_attempts),
        )
        for w in others[: MAX_CANDIDATES - 3]
    ]
    specs.append(
        CandidateSpec(
            "QUARANTINE",
            f"QUARANTINE:{failed.id}",
            None,
            {"worker": failed.id},
            (retry_gate, last_worker_gate),
            evidence=evidence(rule, failed.id, failed.recent),
        )
    )
    specs.append(CandidateSpec("ABORT", "ABORT", None, {}, (), runs_job=False))
    return specs
