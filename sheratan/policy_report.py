"""Priors as rows for people and scripts: the current policy, and what changed between two
positions of the log."""

from __future__ import annotations

from typing import Any

from projections.priors import PriorsView


def priors_rows(view: PriorsView, intent: str | None = None) -> list[dict[str, Any]]:
    rows = [
        {
            "intent": i,
            "action": key,
            "visits": prior.visits,
            "mean_score": prior.mean_score,
            "last_scores": list(prior.last_scores),
        }
        for (i, key), prior in view.priors.items()
        if intent is None or i == intent
    ]
    return sorted(rows, key=lambda r: (r["intent"], -r["mean_score"], r["action"]))


def priors_diff(
    before: PriorsView, after: PriorsView, intent: str | None = None
) -> list[dict[str, Any]]:
    """Every (intent, action) whose prior changed: visits added, mean before and after."""
    rows = []
    for key, prior in after.priors.items():
        if intent is not None and key[0] != intent:
            continue
        old = before.priors.get(key)
        if old == prior:
            continue
        rows.append(
            {
                "intent": key[0],
                "action": key[1],
                "visits_added": prior.visits - (old.visits if old else 0),
                "mean_before": old.mean_score if old else None,
                "mean_after": prior.mean_score,
            }
        )
    return sorted(rows, key=lambda r: (r["intent"], -r["visits_added"], r["action"]))
