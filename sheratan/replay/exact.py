"""Exact replay: is every recorded decision what the engine decides again, as of its position?

Each decision is re-run (``History``) and compared with the record:

- ``major``: another choice, another candidate set, or another gate result;
- ``minor``: the same choice and gates, but a select score or probability differs by more
  than ``TOLERANCE``, or the input or output hash differs;
- ``none``: everything equal.

A decision is re-run on what it recorded of the outside world (path checks, worker health),
never on the live filesystem; where the worker health it recorded differs from the fold as of
its position, the decision is counted in ``worker_health_differs`` and listed as a minor
finding (a heartbeat that overtook a dispatcher's save, or a fold bug).

A dispatch decision that the system state as of its position forbade (one made while
PAUSED, or a job's first lease in RECOVERY) is major drift: gating must follow the log.

Each recorded score is also re-computed from its recorded metrics against the baseline as
of its position; a difference beyond ``TOLERANCE`` is counted in ``scores_drifted`` and
listed as a minor finding (the drift counts are per decision). Any major drift makes the
CLI exit 1, so CI can gate on determinism.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from events.decisions import Candidate, DecisionMade
from sheratan.replay.history import DecisionStep, History, ScoreStep

TOLERANCE = 1e-9
MAX_SHOWN = 20
DRIFTS = ("none", "minor", "major")


@dataclass
class Finding:
    """How one decision drifted, and in what."""

    position: int
    node_id: str
    intent: str
    drift: str
    differences: list[str]


def compare(recorded: DecisionMade, rerun: DecisionMade) -> tuple[str, list[str]]:
    """The drift class of a re-run decision and what differs.

    Equal hashes cover the choice, every gate result, select score, probability and prior
    exactly (floats are hashed as their shortest exact repr), so they settle the common case
    without comparing field by field. Candidate params are not hashed: what a gate read into
    them (G5's evidence) is compared here, and a difference is major.
    """
    read = _param_differences(recorded, rerun)
    hashes_equal = (
        recorded.input_hash == rerun.input_hash and recorded.output_hash == rerun.output_hash
    )
    inputs_equal = recorded.observed is None or recorded.observed == rerun.observed
    if hashes_equal and not read and inputs_equal:
        return "none", []
    major: list[str] = list(read)
    minor: list[str] = []
    keys = [c.key for c in recorded.candidates]
    if keys != [c.key for c in rerun.candidates]:
        major.append(f"candidates {keys} -> {[c.key for c in rerun.candidates]}")
    else:
        for old, new in zip(recorded.candidates, rerun.candidates, strict=True):
            major += _gate_differences(old, new)
            minor += _score_differences(old, new)
    if _chosen_key(recorded) != _chosen_key(rerun):
        major.append(f"chosen {_chosen_key(recorded)} -> {_chosen_key(rerun)}")
    if recorded.input_hash != rerun.input_hash:
        minor.append("input hash differs")
    if recorded.output_hash != rerun.output_hash:
        minor.append("output hash differs")
    if not inputs_equal:
        minor.append("the re-run read outside inputs its record does not hold")
    if major:
        return "major", major + minor
    return ("minor", minor) if minor else ("none", [])


def _param_differences(recorded: DecisionMade, rerun: DecisionMade) -> list[str]:
    return [
        f"{old.key} params {old.params} -> {new.params}"
        for old, new in zip(recorded.candidates, rerun.candidates, strict=False)
        if old.key == new.key and old.params != new.params
    ]


def _chosen_key(made: DecisionMade) -> str:
    return made.candidates[made.chosen].key if made.chosen >= 0 else "ABORT (all gated)"


def _gate_differences(old: Candidate, new: Candidate) -> list[str]:
    before = [(g.gate, g.passed) for g in old.gates]
    after = [(g.gate, g.passed) for g in new.gates]
    return [] if before == after else [f"{old.key} gates {before} -> {after}"]


def _score_differences(old: Candidate, new: Candidate) -> list[str]:
    out = []
    for name in ("select_score", "probability", "mean", "ucb_bonus", "risk_penalty"):
        a, b = getattr(old, name), getattr(new, name)
        if (a is None) != (b is None) or (a is not None and abs(a - b) > TOLERANCE):
            out.append(f"{old.key} {name} {a} -> {b}")
    return out


@dataclass
class ExactReport:
    decisions: int = 0
    scores: int = 0
    drift: Counter[str] = field(default_factory=Counter)
    input_hash_matches: int = 0
    output_hash_matches: int = 0
    scores_drifted: int = 0
    worker_health_differs: int = 0
    findings: list[Finding] = field(default_factory=list)
    unrecorded_policy: int = 0

    def note(self, position: int, made: DecisionMade, drift: str, differences: list[str]) -> None:
        """Keep a drifted decision or score among the findings shown (the first MAX_SHOWN)."""
        if len(self.findings) < MAX_SHOWN:
            finding = Finding(position, str(made.originator_id), made.intent, drift, differences)
            self.findings.append(finding)

    def merge(self, other: ExactReport) -> None:
        """Add the report of the next range of the log (``sheratan.replay.parallel``): the
        counts add up, the findings stay in log order (the first MAX_SHOWN)."""
        self.decisions += other.decisions
        self.scores += other.scores
        self.drift.update(other.drift)
        self.input_hash_matches += other.input_hash_matches
        self.output_hash_matches += other.output_hash_matches
        self.scores_drifted += other.scores_drifted
        self.worker_health_differs += other.worker_health_differs
        self.findings = (self.findings + other.findings)[:MAX_SHOWN]
        self.unrecorded_policy += other.unrecorded_policy

    def summary(self) -> dict[str, Any]:
        return {
            "mode": "exact",
            "decisions": self.decisions,
            "scores_checked": self.scores,
            "scores_drifted": self.scores_drifted,
            "drift": {d: self.drift.get(d, 0) for d in DRIFTS},
            "input_hash_matches": self.input_hash_matches,
            "output_hash_matches": self.output_hash_matches,
            "policy_not_recorded": self.unrecorded_policy,
            "worker_health_differs": self.worker_health_differs,
            "ok": self.drift.get("major", 0) == 0,
            "findings": [vars(f) for f in self.findings],
        }


def replay_exact(
    history: History,
    *,
    check_from: int = 1,
    check_to: int | None = None,
    trace_id: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExactReport:
    """Re-run every decision from ``check_from`` to ``check_to`` (default: the end of the
    log), or of one trace, and compare."""
    wanted = None if trace_id is None else (lambda made: str(made.trace_id) == trace_id)
    report = ExactReport()
    steps = history.steps(
        check_from=check_from, check_to=check_to, wanted=wanted, progress=progress
    )
    for step in steps:
        if isinstance(step, DecisionStep):
            report.decisions += 1
            drift, differences = compare(step.recorded, step.rerun)
            if step.gated:
                differences += step.gated
                drift = "major"
            if step.health:
                report.worker_health_differs += 1
                differences += step.health
                drift = "minor" if drift == "none" else drift
            report.input_hash_matches += step.recorded.input_hash == step.rerun.input_hash
            report.output_hash_matches += step.recorded.output_hash == step.rerun.output_hash
            report.drift[drift] += 1
            if drift != "none":
                report.note(step.position, step.recorded, drift, differences)
        elif isinstance(step, ScoreStep) and step.recomputed is not None:
            report.scores += 1
            if abs(step.recomputed - step.recorded.score) > TOLERANCE:
                report.scores_drifted += 1
                differences = [f"score {step.recorded.score} -> recomputed {step.recomputed}"]
                report.note(step.position, step.made, "minor", differences)
    report.unrecorded_policy = history.unrecorded_policy
    return report
