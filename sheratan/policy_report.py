"""The policy for people and scripts: priors as rows, what changed between two positions of
the log, and the effective gates and scoring with the source of each value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from projections.priors import PriorsView
from sheratan.decide.policy import load_gates_sources, load_scoring_sources


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


def effective_policies(gates: Path | None, scoring: Path | None) -> dict[str, Any]:
    """The gates and scoring a run with these files would use, merged over the shipped files,
    and where each value came from (``policies/gates.json``, the given file, or both)."""
    loaded_gates, loaded_scoring = load_gates_sources(gates), load_scoring_sources(scoring)
    return {
        "gates": msgspec.to_builtins(loaded_gates.policy),
        "scoring": msgspec.to_builtins(loaded_scoring.policy),
        "sources": {"gates": loaded_gates.sources, "scoring": loaded_scoring.sources},
    }


def effective_text(effective: dict[str, Any]) -> str:
    """One ``name = value  (source)`` line per setting, gates then scoring."""
    lines = []
    for part in ("gates", "scoring"):
        lines.append(f"{part}:")
        for name, source in effective["sources"][part].items():
            value: Any = effective[part]
            for step in name.split("."):
                value = value[step]
            lines.append(f"  {name} = {msgspec.json.encode(value).decode()}  ({source})")
    return "\n".join(lines)
