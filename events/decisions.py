"""Decisions, their scores, and what they teach: priors and baselines.

A decision node is one stream: ``decision.made`` records the candidates (gate results, UCB
terms, exact probabilities), the chosen one and the random draw; ``decision.scored`` records
the outcome, the score and its breakdown. ``priors.*`` and ``baseline.updated`` are the
learning, one stream per (intent, action key) and per intent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

import msgspec

from events import Event

ActionType = Literal[
    "ROUTE", "EXECUTE", "RETRY", "REWRITE", "FALLBACK", "QUARANTINE", "SKIP", "ABORT"
]
ResultStatus = Literal["success", "partial", "failed", "recovered", "skipped"]


class GateResult(msgspec.Struct, frozen=True):
    gate: str
    passed: bool
    reason: str | None = None


class Candidate(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    action_id: str
    type: ActionType
    key: str
    params: dict[str, Any]
    gates: tuple[GateResult, ...]
    gated: bool
    mean: float
    visits: int
    ucb_bonus: float
    risk_penalty: float
    select_score: float | None
    probability: float
    #: Whether exploration could pick it (a reversible action, ungated); None in records
    #: made before exploration was restricted to reversible actions.
    explorable: bool | None = None


class Rng(msgspec.Struct, frozen=True, kw_only=True):
    """The randomized step: policy, seed, the uniform draw used, and its parameters."""

    policy: str
    seed: int
    draw: float
    explore_draw: float | None = None
    epsilon: float
    c: float


class Percentiles(msgspec.Struct, frozen=True):
    p50: float
    p95: float


class BaselineUsed(msgspec.Struct, frozen=True, kw_only=True):
    latency_ms: Percentiles
    cost: Percentiles
    source: Literal["default", "observed", "fixed"]
    observations: int = 0


class Weights(msgspec.Struct, frozen=True, kw_only=True):
    wS: float = 3.0
    wQ: float = 1.5
    wR: float = 1.0
    wL: float = 0.8
    wC: float = 1.2
    wK: float = 2.0


class Breakdown(msgspec.Struct, frozen=True, kw_only=True):
    S: float
    Q: float
    R: float
    L_norm: float
    C_norm: float
    K: float
    weights: Weights
    baseline: BaselineUsed


class Metrics(msgspec.Struct, frozen=True, kw_only=True):
    latency_ms: float = 0.0
    cost: float = 0.0
    retries: int = 0
    risk: float = 0.0
    quality: float = 0.0


class ErrorInfo(msgspec.Struct, frozen=True):
    code: str
    message: str


class PathCheck(msgspec.Struct, frozen=True):
    """One path G3 resolved on the filesystem (symlinks followed), and whether it stayed
    inside the workspace."""

    path: str
    inside: bool


class WorkerHealth(msgspec.Struct, frozen=True, kw_only=True):
    """What G0 read of a candidate worker: its status and when it was last heard from
    (None for an in-process worker, which G0 never asks); and, under a limit of attempts
    per worker, how many it held (the ``worker_limit`` gate)."""

    worker: str
    status: Literal["active", "quarantined"]
    quarantined_until: datetime | None = None
    last_seen: datetime | None = None
    held: int | None = None


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """What G5 read of a worker's recent record before a QUARANTINE candidate: its failures
    in a row, and the attempts and failures of its last window."""

    worker: str
    streak: int
    attempts: int
    failures: int


class Observed(msgspec.Struct, frozen=True, kw_only=True):
    """Every input a decision read from outside its own arguments, so replay re-runs it on
    what it saw instead of on the live world. The clock is the decision's ``timestamp``."""

    paths: tuple[PathCheck, ...] = ()
    workers: tuple[WorkerHealth, ...] = ()
    evidence: tuple[Evidence, ...] = ()


class DecisionMade(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "decision.made"

    trace_id: UUID
    parent_node_id: UUID | None = None
    intent: str
    job_id: UUID | None = None
    depth: int = 0
    build_id: str
    context_refs: tuple[str, ...] = ()
    constraints: dict[str, Any] = msgspec.field(default_factory=dict)
    candidates: tuple[Candidate, ...]
    chosen: int
    mode: Literal["simulate", "execute"] = "execute"
    reason: str
    rng: Rng
    input_hash: str
    output_hash: str
    #: The ``policy.recorded`` snapshot (scoring, gates, workspace) this decision ran under.
    policy_id: str | None = None
    #: What it read of the outside world (paths, worker health); None in older records.
    observed: Observed | None = None


class DecisionScored(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "decision.scored"

    status: ResultStatus
    metrics: Metrics
    score: float
    breakdown: Breakdown | None = None
    error: ErrorInfo | None = None
    artifacts: tuple[str, ...] = ()


class PriorsSeeded(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "priors.seeded"

    intent: str
    action_key: str
    visits: int
    mean_score: float
    last_scores: tuple[float, ...]


class PriorsUpdated(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "priors.updated"

    intent: str
    action_key: str
    score: float
    decision_id: UUID


class BaselineUpdated(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "baseline.updated"

    intent: str
    action_key: str
    latency_ms: float
    cost: float
    decision_id: UUID


DECISION_EVENTS = (DecisionMade, DecisionScored, PriorsSeeded, PriorsUpdated, BaselineUpdated)
