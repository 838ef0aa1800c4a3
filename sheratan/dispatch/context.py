"""What the dispatcher's parts share: the live views, the recorder, the engine, time, ids,
and the figures of the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from projections.accounts import AccountsView
from projections.baselines import BaselinesView
from projections.chains import ChainsView
from projections.decisions import OpenDecisionsView
from projections.jobs import JobsView
from projections.priors import PriorsView
from projections.system import SystemView
from projections.workers import WorkersView
from sheratan.decide.engine import DecisionEngine
from sheratan.decide.policy import ScoringPolicy
from sheratan.limits import ChainLimit
from sheratan.recording import Clock, Ids, Recorder


@dataclass
class EngineViews:
    """The live read models the dispatcher decides on; the recorder folds every event into
    them."""

    jobs: JobsView
    workers: WorkersView
    priors: PriorsView
    baselines: BaselinesView
    decisions: OpenDecisionsView
    chains: ChainsView
    accounts: AccountsView
    #: The system state per namespace and what the anomaly rules read (sheratan.dispatch.watch).
    system: SystemView = field(default_factory=SystemView)

    def all(self) -> list[Any]:
        return [
            self.jobs,
            self.workers,
            self.priors,
            self.baselines,
            self.decisions,
            self.chains,
            self.accounts,
            self.system,
        ]


@dataclass
class WorkerStats:
    chosen: int = 0
    score_sum: float = 0.0

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / self.chosen if self.chosen else None


@dataclass
class RunStats:
    """What one run of the dispatcher did."""

    jobs: int = 0
    decisions: int = 0
    completed: int = 0
    failed: int = 0
    aborted: int = 0
    timed_out: int = 0
    dispatch_scores: list[float] = field(default_factory=list)
    per_worker: dict[str, WorkerStats] = field(default_factory=dict)
    chosen_sequence: list[str] = field(default_factory=list)
    breaches: int = 0
    job_ids: set[Any] = field(default_factory=set)

    @property
    def mean_score(self) -> float | None:
        scores = self.dispatch_scores
        return sum(scores) / len(scores) if scores else None

    def count_dispatch_score(self, worker: str, score: float) -> None:
        stats = self.per_worker.setdefault(worker, WorkerStats())
        stats.chosen += 1
        stats.score_sum += score
        self.dispatch_scores.append(score)
        self.chosen_sequence.append(worker)


@dataclass
class DispatchContext:
    views: EngineViews
    recorder: Recorder
    engine: DecisionEngine
    scoring: ScoringPolicy
    clock: Clock
    ids: Ids
    #: What the follow-ups of a result may add to a chain (``sheratan.chains``).
    chain_limits: ChainLimit
    stats: RunStats = field(default_factory=RunStats)
    #: The only jobs this dispatcher takes: "" real work, else one simulation's.
    namespace: str = ""
