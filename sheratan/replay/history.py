"""One pass over the log that re-runs every decision against the state as of its position.

Rebuilding the views "as of position N" for each decision separately would fold the log
once per decision. The log is ordered, so one forward pass does the same: the jobs, workers,
priors and baselines views are folded event by event, and when a ``decision.made`` line comes
they hold exactly the state the live engine decided on (the events before it). The decision
is then re-run by the real engine (the candidate builders of ``sheratan.dispatch.candidates``
and ``DecisionEngine``) under the policy it recorded (``policy.recorded``), with its recorded
draw and on what it recorded of the outside world (``observed``: path checks, worker health),
so replay never reads the live filesystem and a heartbeat that overtook a dispatcher's save
does not change the re-run. The recorded worker health is also held against the fold as of
the decision's position (``DecisionStep.health``), so a fold bug is not hidden by the
recording. Each ``decision.scored`` is re-scored from its recorded metrics against the
baseline as of its position.

Overrides turn the same pass into a regression check: another scoring policy (weights) and
other starter priors. Re-scored outcomes then feed the replayed priors in place of the
recorded scores, so later decisions see what the new weights would have taught.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec

from events import Event
from events.decisions import (
    BaselineUpdated,
    DecisionMade,
    DecisionScored,
    Observed,
    PriorsSeeded,
    PriorsUpdated,
    Rng,
)
from events.policy import PolicyRecorded
from projections.accounts import AccountsView
from projections.baselines import BaselinesView
from projections.jobs import JobState, JobsView
from projections.priors import PriorsView
from projections.system import SystemView
from projections.workers import WorkersView
from sheratan.decide.engine import CandidateSpec, DecisionEngine
from sheratan.decide.observed import as_seen, health_of
from sheratan.decide.policy import (
    PolicySnapshot,
    PriorSeed,
    ScoringPolicy,
    load_gates,
    load_scoring,
)
from sheratan.decide.scoring import baseline_for, score_outcome, weighted_score
from sheratan.decide.selection import SelectionPolicy
from sheratan.dispatch.candidates import (
    DISPATCH,
    RECOVER,
    decision_constraints,
    dispatch_specs,
    recovery_specs,
)
from sheratan.dispatch.gating import admits
from sheratan.store.ledger import Ledger
from sheratan.views import EventReader

OK_STATUSES = frozenset({"success", "recovered"})
PROGRESS_EVERY = 10_000


class ReplayError(ValueError):
    """The log cannot be replayed (a decision on an unknown job, an unknown intent)."""


class _PolicyOf(msgspec.Struct):
    policy_id: str | None = None


class _MadeHead(msgspec.Struct):
    """What the prefix fold reads of a ``decision.made`` line (msgspec skips the rest)."""

    stream: UUID
    data: _PolicyOf


_MADE_HEAD = msgspec.json.Decoder(_MadeHead)
_TOPIC_KEY = b'"topic":"'
_MADE = b'decision.made"'


def _is_made(raw: bytes) -> bool:
    """Whether a ledger line is a ``decision.made``, read without decoding it: its first
    ``"topic":"`` is the envelope's (the pos, ts, stream and ver before it cannot hold one;
    the data after it can)."""
    return raw.startswith(_MADE, raw.find(_TOPIC_KEY) + len(_TOPIC_KEY))


class _RecordedDraw(random.Random):
    """Hands the engine the recorded uniform draw instead of a fresh one."""

    draw = 0.0

    def random(self) -> float:
        return self.draw


class DecisionStep(msgspec.Struct, frozen=True):
    """A recorded decision and the same decision re-run as of its position; ``health``:
    where the worker health it recorded differs from the fold as of its position."""

    position: int
    recorded: DecisionMade
    rerun: DecisionMade
    health: tuple[str, ...] = ()
    #: Why the system state as of its position should have held the job back, if it should.
    gated: tuple[str, ...] = ()


class ScoreStep(msgspec.Struct, frozen=True):
    """A recorded score, the score re-computed under the recorded policy, and under the
    replay's scoring policy (the same unless weights are overridden)."""

    position: int
    made: DecisionMade
    recorded: DecisionScored
    recomputed: float | None
    rescored: float


Step = DecisionStep | ScoreStep


class History:
    """The replay pass over one ledger."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        scoring: ScoringPolicy | None = None,
        seeds: dict[str, dict[str, PriorSeed]] | None = None,
        reader: EventReader | None = None,
    ) -> None:
        self.ledger = ledger
        self.scoring_override = scoring
        self.seeds_override = seeds
        self.reader = reader or EventReader()
        self.jobs = JobsView()
        self.workers = WorkersView()
        self.accounts = AccountsView()
        self.priors = PriorsView()
        self.system = SystemView()
        self.baselines: dict[int, BaselinesView] = {}
        self.policies: dict[str, PolicySnapshot] = {}
        self.unrecorded_policy = 0
        self._engines: dict[tuple[Any, ...], tuple[DecisionEngine, _RecordedDraw]] = {}
        self._pending: dict[Any, DecisionMade] = {}
        self._rescored: dict[Any, float] = {}
        self._routes: dict[type[Event], list[Any]] = {}
        for view in (self.jobs, self.workers, self.accounts, self.system):
            for event_type in view.FOLDS:
                self._routes.setdefault(event_type, []).append(view)

    def steps(
        self,
        *,
        check_from: int = 1,
        check_to: int | None = None,
        wanted: Callable[[DecisionMade], bool] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[Step]:
        """Fold the log up to ``check_to`` (default: its end); yield a step for each decision
        (and score) from ``check_from`` on that ``wanted`` accepts.

        Before ``check_from`` the pass only folds: no decision is re-run and no score
        re-computed, which is what lets a range of the log be checked in a process of its own
        (``sheratan.replay.parallel``) at a fraction of the cost of checking its prefix."""
        # The pass makes no reference cycles but allocates millions of objects while the
        # views hold many: the cyclic collector's passes cost ~7% of it (as in Views._fold).
        collecting = gc.isenabled()
        gc.disable()
        try:
            yield from self._steps(check_from, check_to, wanted, progress)
        finally:
            if collecting:
                gc.enable()

    def _steps(
        self,
        check_from: int,
        check_to: int | None,
        wanted: Callable[[DecisionMade], bool] | None,
        progress: Callable[[int], None] | None,
    ) -> Iterator[Step]:
        if self.seeds_override is not None:
            self._seed(self.seeds_override)
        last = self.ledger.last_position() if check_to is None else check_to
        first = 1
        if check_from > 1:
            first = self._fold_prefix(min(check_from - 1, last), progress)
        routes = self._routes
        pending = self._pending
        events = self.reader.events(self.ledger, first, last)
        for count, (position, event) in enumerate(events, first):
            kind = type(event)
            if kind is DecisionMade:
                made: DecisionMade = event  # type: ignore[assignment]
                pending[made.originator_id] = made
                if position >= check_from and (wanted is None or wanted(made)):
                    yield self.rerun(position, made)
            elif kind is DecisionScored:
                step = self._score(position, event, position >= check_from)  # type: ignore[arg-type]
                if step is not None and (wanted is None or wanted(step.made)):
                    yield step
            else:
                self._fold_state(position, event, routes)
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress(position)
        if progress is not None:
            progress(last)

    def _fold_state(self, position: int, event: Any, routes: dict[type[Event], list[Any]]) -> None:
        """Fold an event that is neither a decision nor its score: priors, policies, views."""
        kind = type(event)
        if kind is PriorsUpdated or kind is PriorsSeeded:
            self._prior(position, event)
        elif kind is PolicyRecorded:
            self.policies[event.policy_id] = PolicySnapshot.from_plain(
                event.scoring, event.gates, event.workspace
            )
        else:
            for view in routes.get(kind, ()):
                view.apply(position, event)
            if kind is BaselineUpdated:
                for baselines in self.baselines.values():
                    baselines.apply(position, event)

    def _fold_prefix(self, last: int, progress: Callable[[int], None] | None) -> int:
        """Fold positions 1..``last``, where nothing is checked; the next position to read.

        A ``decision.made`` line, the longest kind, is not decoded here: only its stream and
        policy are read (what its score's fold needs); the decisions still open at ``last``
        are decoded at the end, for their scores in the range checked."""
        routes = self._routes
        waiting: dict[Any, tuple[int, str | None]] = {}
        decode, head = self.reader.decode, _MADE_HEAD.decode
        for position, raw in self.ledger.lines(1, last):
            if _is_made(raw):
                made = head(raw)
                waiting[made.stream] = (position, made.data.policy_id)
                continue
            _, event = decode(raw)
            kind = type(event)
            if kind is DecisionScored:
                opened = waiting.pop(event.originator_id, None)
                if opened is not None:
                    self._fold_score(opened[1], event)  # type: ignore[arg-type]
            else:
                self._fold_state(position, event, routes)
            if progress is not None and position % PROGRESS_EVERY == 0:
                progress(position)
        positions = sorted(position for position, _ in waiting.values())
        for raw in self.ledger.lines_at(positions):
            _, event = decode(raw)
            self._pending[event.originator_id] = event  # type: ignore[assignment]
        return last + 1

    def _fold_score(self, policy_id: str | None, scored: DecisionScored) -> None:
        """What a score before the checked range leaves in the fold (as ``_score`` does)."""
        recorded = self.policies.get(policy_id or "")
        snapshot = recorded if recorded is not None else self._unrecorded
        if scored.breakdown is not None:
            self._baselines(snapshot.scoring.baselines.window)
            if self.scoring_override is not None:
                rescored = weighted_score(self.scoring_override.weights, scored.breakdown)
                self._rescored[scored.originator_id] = rescored
        elif self.scoring_override is not None:
            self._rescored[scored.originator_id] = scored.score

    # ------------------------------------------------------------- decisions

    def policy(self, made: DecisionMade) -> PolicySnapshot:
        """The policy a decision ran under; the shipped policy files and the current folder for
        logs that predate ``policy.recorded``."""
        recorded = self.policies.get(made.policy_id or "")
        return recorded if recorded is not None else self._unrecorded

    @cached_property
    def _unrecorded(self) -> PolicySnapshot:
        return PolicySnapshot(load_scoring(), load_gates(), str(Path.cwd()))

    def rerun(self, position: int, made: DecisionMade) -> DecisionStep:
        """The decision re-run by the engine on the state as of its position and on what it
        recorded of the outside world (as today for a record without ``observed``)."""
        if made.policy_id not in self.policies:
            self.unrecorded_policy += 1
        job, specs = self._candidates(made, self.workers)
        health: tuple[str, ...] = ()
        if made.observed is not None:
            health = health_differences(made.observed, specs)
            if made.intent == RECOVER:  # its last_worker gate reads the other workers' status
                job, specs = self._candidates(made, as_seen(self.workers, made.observed))
        rerun = self._engine(made).decide(
            decision_id=made.originator_id,
            trace_id=made.trace_id,
            parent=made.parent_node_id,
            depth=made.depth,
            intent=made.intent,
            job=job,
            specs=specs,
            priors=self.priors,
            constraints=decision_constraints({}, job, self.accounts),
            now=made.timestamp,
            observed=made.observed,
        )
        return DecisionStep(position, made, rerun, health, self._held_back(made, job))

    def _held_back(self, made: DecisionMade, job: JobState) -> tuple[str, ...]:
        """A dispatch decision the system state as of its position forbade (PAUSED: none;
        RECOVERY: none for a job never tried); gating must be a function of the log."""
        if made.intent != DISPATCH:
            return ()
        state = self.system.of(job.namespace).state
        if state == "PAUSED" or not admits(state, job):
            return (f"dispatched while the system was {state}",)
        return ()

    def _candidates(
        self, made: DecisionMade, workers: WorkersView
    ) -> tuple[JobState, list[CandidateSpec]]:
        """The decision's job and candidates, built from ``workers`` (the fold as of its
        position, or as the decision saw it)."""
        job = self.jobs.jobs.get(made.job_id) if made.job_id else None
        if job is None:
            raise ReplayError(f"decision {made.originator_id} is on unknown job {made.job_id}")
        gates = self.policy(made).gates
        if made.intent == DISPATCH:
            specs = dispatch_specs(workers, self.priors, job, gates.worker_max_attempts)
        elif made.intent == RECOVER:
            failed = workers.workers.get(job.worker or "")
            if failed is None:
                raise ReplayError(f"decision {made.originator_id}: job has no failed worker")
            specs = recovery_specs(
                workers, job, failed, gates.quarantine_evidence, gates.worker_max_attempts
            )
        else:
            raise ReplayError(f"decision {made.originator_id}: cannot replay intent {made.intent}")
        return job, specs

    def _engine(self, made: DecisionMade) -> DecisionEngine:
        snapshot = self.policy(made)
        scoring = self.scoring_override or snapshot.scoring
        rng: Rng = made.rng
        key = (made.policy_id, rng.policy, rng.c, rng.epsilon, rng.seed, made.build_id)
        cached = self._engines.get(key)
        if cached is None:
            draw = _RecordedDraw()
            engine = DecisionEngine(
                scoring=scoring,
                gates=snapshot.gates,
                selection=SelectionPolicy.parse(rng.policy, c=rng.c, epsilon=rng.epsilon),
                workspace=Path(snapshot.workspace),
                rng=draw,
                seed=rng.seed,
                build_id=made.build_id,
                policy_id=made.policy_id,
            )
            cached = self._engines[key] = (engine, draw)
        engine, draw = cached
        draw.draw = rng.draw
        return engine

    # ---------------------------------------------------------------- scores

    def _baselines(self, window: int) -> BaselinesView:
        view = self.baselines.get(window)
        if view is None:
            if self.baselines:
                msg = "policies with different baseline windows in one log cannot be replayed"
                raise ReplayError(msg)
            view = self.baselines[window] = BaselinesView(window)
        return view

    def _score(self, position: int, scored: DecisionScored, check: bool) -> ScoreStep | None:
        """The score's step (None for a decision the log does not hold, or unless ``check``);
        keeps what regression's priors learn from it either way."""
        made = self._pending.pop(scored.originator_id, None)
        if made is None:
            return None
        snapshot = self.policy(made)
        rescored = scored.score
        baselines = None
        if scored.breakdown is not None:
            baselines = self._baselines(snapshot.scoring.baselines.window)
            if self.scoring_override is not None:
                rescored = weighted_score(self.scoring_override.weights, scored.breakdown)
        if self.scoring_override is not None:  # only regression's priors read it
            self._rescored[made.originator_id] = rescored
        if not check:
            return None
        recomputed = None
        if baselines is not None:
            recomputed = self._recompute(snapshot.scoring, baselines, made, scored)
        return ScoreStep(position, made, scored, recomputed, rescored)

    @staticmethod
    def _recompute(
        scoring: ScoringPolicy, baselines: BaselinesView, made: DecisionMade, scored: DecisionScored
    ) -> float:
        metrics = scored.metrics
        score, _ = score_outcome(
            scoring,
            baseline_for(scoring, baselines, made.intent),
            ok=scored.status in OK_STATUSES,
            quality=metrics.quality,
            retries=metrics.retries,
            latency_ms=metrics.latency_ms,
            cost=metrics.cost,
            risk=metrics.risk,
        )
        return score

    # ---------------------------------------------------------------- priors

    def _prior(self, position: int, event: Any) -> None:
        if isinstance(event, PriorsSeeded) and self.seeds_override is not None:
            return  # the override's seeds stand in for the recorded ones
        if isinstance(event, PriorsUpdated) and self.scoring_override is not None:
            rescored = self._rescored.pop(event.decision_id, None)
            if rescored is not None:
                event = PriorsUpdated(
                    originator_id=event.originator_id,
                    originator_version=event.originator_version,
                    timestamp=event.timestamp,
                    intent=event.intent,
                    action_key=event.action_key,
                    score=rescored,
                    decision_id=event.decision_id,
                )
        self.priors.apply(position, event)

    def _seed(self, seeds: dict[str, dict[str, PriorSeed]]) -> None:
        for intent, actions in seeds.items():
            for key, seed in actions.items():
                self.priors.apply(
                    0,
                    PriorsSeeded(
                        timestamp=datetime(1970, 1, 1, tzinfo=UTC),
                        intent=intent,
                        action_key=key,
                        visits=seed.visits,
                        mean_score=seed.mean_score,
                        last_scores=seed.last_scores,
                    ),
                )


def health_differences(recorded: Observed, specs: list[CandidateSpec]) -> tuple[str, ...]:
    """Where the worker health a decision recorded (G0's reads, G5's evidence) differs from
    the fold as of its position: expected where another process's heartbeat or result landed
    between a dispatcher's read and its save, otherwise a sign of a fold bug."""
    said: dict[tuple[str, str], Any] = {("health", w.worker): w for w in recorded.workers}
    said |= {("evidence", e.worker): e for e in recorded.evidence}
    folded: dict[tuple[str, str], Any] = {}
    for spec in specs:
        if spec.worker is not None:
            folded["health", spec.worker.id] = health_of(spec.worker, spec.held)
        if spec.evidence is not None:
            folded["evidence", spec.evidence.worker] = spec.evidence
    out = []
    for (what, worker), fold in folded.items():
        record = said.get((what, worker))
        if record is None or record == fold:
            continue
        for name in record.__struct_fields__:
            old, new = getattr(record, name), getattr(fold, name)
            if old != new:
                out.append(f"worker {worker} {what} {name}: recorded {old}, the fold has {new}")
    return tuple(out)
