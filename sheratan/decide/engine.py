"""One decision node: gates, UCB terms, probabilities, the draw, and the hashes replay checks.

The engine is pure given its inputs (job, candidates, priors, constraints, policy and the
draw) and what it read of the outside world (paths, worker health: ``observed``, recorded
with the decision): that is what lets replay rebuild the priors as of a decision's position
and re-run it on what it saw.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec

from events.decisions import (
    ActionType,
    Candidate,
    DecisionMade,
    Evidence,
    GateResult,
    Observed,
    Rng,
)
from projections.jobs import JobState
from projections.priors import PriorsView
from projections.workers import WorkerState
from sheratan.decide.gates import JobGates, g5_evidence, resolves_inside_cached, worker_gates
from sheratan.decide.observed import Reading
from sheratan.decide.policy import GatePolicy, ScoringPolicy
from sheratan.decide.selection import (
    REVERSIBLE,
    SelectionPolicy,
    log_visits,
    pick,
    probabilities,
    ucb_bonus,
)

MAX_CANDIDATES = 7
PASSED_LAST_RESORT = GateResult("last_resort", True)
_canonical = msgspec.json.Encoder(order="sorted")


class CandidateSpec(msgspec.Struct, frozen=True):
    """An action the caller proposes; the engine gates, scores and weighs it (a Struct: a
    frozen dataclass's ``__init__`` cost a decision of five candidates ~6 us)."""

    type: ActionType
    key: str
    worker: WorkerState | None = None
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    extra_gates: tuple[GateResult, ...] = ()
    #: Job gates (G1-G4) guard actions that run the job; ABORT and SKIP run nothing.
    runs_job: bool = True
    #: A worker's recent record, for an action that needs evidence against it (QUARANTINE):
    #: the engine gates the candidate on it (G5) and puts it in the candidate's params.
    evidence: Evidence | None = None
    #: Under a limit of attempts per worker: how many ``worker`` holds (the ``worker_limit``
    #: gate reads it through the decision's ``Reading``, so replay reads what was recorded).
    held: int | None = None


def digest(value: Any) -> str:
    return hashlib.sha256(_canonical.encode(value)).hexdigest()


class DecisionEngine:
    def __init__(
        self,
        *,
        scoring: ScoringPolicy,
        gates: GatePolicy,
        selection: SelectionPolicy,
        workspace: Path,
        rng: random.Random,
        seed: int,
        build_id: str,
        policy_id: str | None = None,
    ) -> None:
        self.scoring = scoring
        self.gate_policy = gates
        self.job_gates = JobGates(gates, workspace)
        self.selection = selection
        self.rng = rng
        self.seed = seed
        self.build_id = build_id
        self.policy_id = policy_id

    def decide(
        self,
        *,
        decision_id: UUID,
        trace_id: UUID,
        parent: UUID | None,
        depth: int,
        intent: str,
        job: JobState,
        specs: list[CandidateSpec],
        priors: PriorsView,
        constraints: dict[str, Any],
        now: datetime,
        observed: Observed | None = None,
    ) -> DecisionMade:
        """Open a decision node: gate, score and weigh every candidate, draw, and choose.

        ``now`` is the decision's clock and becomes its timestamp. What the gates read of the
        outside world (paths, worker health, a worker's recent record) is recorded in the
        decision's ``observed``; given a recording (replay), the gates read it instead.
        """
        if not 1 <= len(specs) <= MAX_CANDIDATES:
            msg = f"a decision needs 1 to {MAX_CANDIDATES} candidates, got {len(specs)}"
            raise ValueError(msg)
        reading = Reading(observed, resolves_inside_cached)
        job_gates = self.job_gates.check(job, constraints, reading.inside)
        total = priors.intent_visits(intent)
        log_total = log_visits(total)
        job_passed = all([g.passed for g in job_gates])
        policy = self.gate_policy
        gate_lists = []
        param_list = []
        passed_list = []
        for spec in specs:
            gates = list(job_gates) if spec.runs_job else []
            passed = job_passed or not spec.runs_job
            if spec.worker is not None:
                worker, held = reading.worker(spec.worker, spec.held)
                more = worker_gates(policy, worker, job, constraints, now, held)
                gates += more
                passed = passed and all([g.passed for g in more])
            if spec.extra_gates:
                gates += spec.extra_gates
                passed = passed and all([g.passed for g in spec.extra_gates])
            params = spec.params
            if spec.evidence is not None:
                seen = reading.seen(spec.evidence)
                g5 = g5_evidence(policy.quarantine_evidence, seen)
                gates.append(g5)
                passed = passed and g5.passed
                counts = {
                    "streak": seen.streak,
                    "attempts": seen.attempts,
                    "failures": seen.failures,
                }
                params = {**params, "evidence": counts}
            gate_lists.append(gates)
            param_list.append(params)
            passed_list.append(passed)
        seen_outside = reading.observed()
        last_resort = _last_resort(specs, passed_list)
        weights = self.scoring.weights
        c = self.selection.c
        rows = []
        for spec, gates, params, passed in zip(
            specs, gate_lists, param_list, passed_list, strict=True
        ):
            if spec.type == "ABORT":
                gates.append(last_resort)
                passed = passed and last_resort.passed
            prior = priors.get(intent, spec.key)
            reversible = spec.type in REVERSIBLE
            bonus = ucb_bonus(c, log_total, prior.visits) if reversible else 0.0
            risk = float((spec.worker.profile or {}).get("risk", 0.0)) if spec.worker else 0.0
            penalty = weights.wK * risk
            select = prior.mean_score + bonus - penalty if passed else None
            rows.append((spec, params, tuple(gates), not passed, prior, bonus, penalty, select))
        probs = probabilities(
            self.selection,
            [r[7] for r in rows],
            [r[0].worker.id if r[0].worker else None for r in rows],
            [r[0].type in REVERSIBLE for r in rows],
        )
        draw = self.rng.random()
        chosen = pick(probs, draw)
        node = str(decision_id)
        candidates = tuple(
            Candidate(
                action_id=f"{node}:{i}",
                type=spec.type,
                key=spec.key,
                params=params,
                gates=gates,
                gated=gated,
                mean=prior.mean_score,
                visits=prior.visits,
                ucb_bonus=bonus,
                risk_penalty=penalty,
                select_score=select,
                probability=probs[i],
                explorable=spec.type in REVERSIBLE and not gated,
            )
            for i, (spec, params, gates, gated, prior, bonus, penalty, select) in enumerate(rows)
        )
        return DecisionMade(
            originator_id=decision_id,
            originator_version=1,
            timestamp=now,
            trace_id=trace_id,
            parent_node_id=parent,
            intent=intent,
            job_id=job.id,
            depth=depth,
            build_id=self.build_id,
            context_refs=(f"job:{job.id}",),
            constraints=constraints,
            candidates=candidates,
            chosen=-1 if chosen is None else chosen,
            reason=_reason(candidates, chosen),
            rng=Rng(
                policy=self.selection.label,
                seed=self.seed,
                draw=draw,
                epsilon=self.selection.epsilon,
                c=c,
            ),
            input_hash=input_hash(intent, job, constraints, candidates, total, self.selection),
            output_hash=output_hash(candidates, chosen),
            policy_id=self.policy_id,
            observed=seen_outside,
        )


def input_hash(
    intent: str,
    job: JobState,
    constraints: dict[str, Any],
    candidates: tuple[Candidate, ...],
    total_visits: int,
    selection: SelectionPolicy,
) -> str:
    """What the decision saw: job, constraints, candidates with gates, priors, policy.

    What the gates read of the outside world (``observed``) shows here through the gate
    results it led to; it is left out so records made before it was recorded keep their hash.
    """
    return digest(
        {
            "intent": intent,
            "job": [str(job.id), job.kind, job.payload_hash, job.attempt, job.retry_count],
            "constraints": constraints,
            "candidates": [[c.key, [[g.gate, g.passed] for g in c.gates]] for c in candidates],
            "priors": [[c.key, c.visits, c.mean] for c in candidates],
            "total_visits": total_visits,
            "policy": [selection.label, selection.c, selection.epsilon],
        }
    )


def output_hash(candidates: tuple[Candidate, ...], chosen: int | None) -> str:
    """What the decision did: the choice and every select score and probability."""
    return digest(
        {
            "chosen": None if chosen is None else candidates[chosen].key,
            "scores": [[c.key, c.select_score, c.probability] for c in candidates],
        }
    )


def _last_resort(specs: list[CandidateSpec], passed: list[bool]) -> GateResult:
    """ABORT is the last resort: gated while any reversible candidate is open."""
    open_keys = [
        spec.key
        for spec, open_ in zip(specs, passed, strict=True)
        if open_ and spec.type in REVERSIBLE
    ]
    if not open_keys:
        return PASSED_LAST_RESORT
    return GateResult("last_resort", False, f"reversible actions are open: {', '.join(open_keys)}")


def _reason(candidates: tuple[Candidate, ...], chosen: int | None) -> str:
    if chosen is None:
        blocked = "; ".join(
            f"{c.key}: {next(g.reason for g in c.gates if not g.passed)}" for c in candidates
        )
        return f"ABORT: every candidate is gated ({blocked})"
    c = candidates[chosen]
    return (
        f"{c.key} with probability {c.probability:.3f} "
        f"(select {c.select_score:.3f} = mean {c.mean:.3f} + bonus {c.ucb_bonus:.3f} "
        f"- risk {c.risk_penalty:.3f})"
    )
