"""Regression replay: new scoring weights or starter priors against recorded history.

Every recorded outcome is re-scored from its recorded breakdown terms under the new
weights (the outcomes themselves are history: latency, cost, success do not change), and
every decision is re-selected by the engine under the new policy, on priors learned from the
re-scored outcomes, with its recorded draw. The history stays as recorded (an open loop): a
changed choice is reported, not followed, since its outcome was never observed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sheratan.replay.history import DecisionStep, History, ScoreStep

TOP_CHANGED = 10


@dataclass
class RegressionReport:
    decisions: int = 0
    changed: int = 0
    scores_old: list[float] = field(default_factory=list)
    scores_new: list[float] = field(default_factory=list)
    top: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mean_old(self) -> float | None:
        return sum(self.scores_old) / len(self.scores_old) if self.scores_old else None

    @property
    def mean_new(self) -> float | None:
        return sum(self.scores_new) / len(self.scores_new) if self.scores_new else None

    def summary(self, fail_if_drop: float | None) -> dict[str, Any]:
        old, new = self.mean_old, self.mean_new
        drop = None if old is None or new is None else old - new
        failed = fail_if_drop is not None and drop is not None and drop > fail_if_drop
        top = sorted(self.top, key=_importance)[:TOP_CHANGED]
        return {
            "mode": "regression",
            "decisions": self.decisions,
            "scores": len(self.scores_old),
            "mean_score_old": old,
            "mean_score_new": new,
            "mean_drop": drop,
            "changed": self.changed,
            "changed_share": self.changed / self.decisions if self.decisions else 0.0,
            "fail_if_drop": fail_if_drop,
            "ok": not failed,
            "top_changed": top,
        }


def replay_regression(
    history: History, *, progress: Callable[[int], None] | None = None
) -> RegressionReport:
    """Re-score and re-select every decision under ``history``'s overrides."""
    report = RegressionReport()
    for step in history.steps(progress=progress):
        if isinstance(step, ScoreStep):
            report.scores_old.append(step.recorded.score)
            report.scores_new.append(step.rescored)
            continue
        assert isinstance(step, DecisionStep)
        report.decisions += 1
        old, new = step.recorded, step.rerun
        old_key = old.candidates[old.chosen].key if old.chosen >= 0 else "ABORT"
        new_key = new.candidates[new.chosen].key if new.chosen >= 0 else "ABORT"
        old_select = old.candidates[old.chosen].select_score if old.chosen >= 0 else None
        new_select = new.candidates[old.chosen].select_score if old.chosen >= 0 else None
        change = (new_select or 0.0) - (old_select or 0.0)
        if old_key != new_key:
            report.changed += 1
        if old_key != new_key or abs(change) > 1e-9:
            report.top.append(
                {
                    "node_id": str(old.originator_id),
                    "position": step.position,
                    "intent": old.intent,
                    "old_choice": old_key,
                    "new_choice": new_key,
                    "select_change": change,
                }
            )
            if len(report.top) > 4 * TOP_CHANGED:
                report.top.sort(key=_importance)
                del report.top[TOP_CHANGED:]
    return report


def _importance(change: dict[str, Any]) -> tuple[bool, float]:
    """Changed choices first, then the largest change of the chosen's select score."""
    return change["old_choice"] == change["new_choice"], -abs(change["select_change"])
