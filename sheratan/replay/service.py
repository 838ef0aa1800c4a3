"""The replay commands as services: run one mode on a home and record it as ``replay.run``.

Each run appends a ``replay.run`` event with its options and summary (the findings lists
are left out of the event: they are in the command's output, and the log keeps the counts).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from sheratan.analytics.session import Analytics
from sheratan.decide.policy import load_prior_seeds, load_scoring
from sheratan.home import Home
from sheratan.replay.counterfactual import at_node, counterfactual, parse_target
from sheratan.replay.exact import replay_exact
from sheratan.replay.history import History
from sheratan.replay.parallel import replay_exact_ranges
from sheratan.replay.regression import replay_regression
from sheratan.views import WORKERS

Progress = Callable[[int], None] | None
_LISTS = ("findings", "top_changed")


def _record(home: Home, mode: str, options: dict[str, Any], summary: dict[str, Any]) -> None:
    kept = {k: v for k, v in summary.items() if k not in _LISTS}
    summary["run_id"] = str(home.app.record_replay_run(mode, options, kept))


def run_exact(
    home: Home,
    *,
    trace_id: str | None = None,
    since: int = 1,
    workers: int = 1,
    progress: Progress = None,
) -> dict[str, Any]:
    """Exact replay from ``since`` (or of one trace); the whole log's ranges in up to
    ``workers`` processes (the same report)."""
    if trace_id is None:
        report = replay_exact_ranges(
            home.ledger, check_from=since, workers=workers, progress=progress
        )
    else:
        report = replay_exact(
            History(home.ledger), check_from=since, trace_id=trace_id, progress=progress
        )
    summary = report.summary()
    _record(home, "exact", {"trace": trace_id, "since": since}, summary)
    return summary


def estimate_counterfactual(home: Home, policy: str, **options: Any) -> dict[str, Any]:
    """The counterfactual estimate alone, recording nothing (the read-only API asks this)."""
    parse_target(policy).require_known(home.views.current(WORKERS).workers)
    with Analytics(home.path) as analytics:
        return counterfactual(analytics, policy, **options)


def estimate_at(home: Home, node_id: str, action: str) -> dict[str, Any]:
    """One decision's estimate had ``action`` been chosen, recording nothing."""
    with Analytics(home.path) as analytics:
        return at_node(analytics, node_id, action)


def run_counterfactual(home: Home, policy: str, **options: Any) -> dict[str, Any]:
    summary = estimate_counterfactual(home, policy, **options)
    _record(home, "counterfactual", {"policy": policy, **options}, summary)
    return summary


def run_counterfactual_at(home: Home, node_id: str, action: str) -> dict[str, Any]:
    summary = estimate_at(home, node_id, action)
    _record(home, "counterfactual_at", {"node": node_id, "action": action}, summary)
    return summary


def estimate_regression(
    home: Home, *, weights: dict[str, float], fail_if_drop: float | None = None
) -> dict[str, Any]:
    """History re-scored and re-selected under the shipped scoring with ``weights`` (wS, wQ,
    wR, wL, wC, wK) set over it, recording nothing (the read-only API asks this)."""
    shipped = load_scoring()
    scoring = msgspec.structs.replace(
        shipped, weights=msgspec.structs.replace(shipped.weights, **weights)
    )
    return replay_regression(History(home.ledger, scoring=scoring)).summary(fail_if_drop)


def run_regression(
    home: Home,
    *,
    weights: Path | None = None,
    priors: Path | None = None,
    fail_if_drop: float | None = None,
    progress: Progress = None,
) -> dict[str, Any]:
    history = History(
        home.ledger,
        scoring=load_scoring(weights) if weights is not None else None,
        seeds=load_prior_seeds(priors) if priors is not None else None,
    )
    summary = replay_regression(history, progress=progress).summary(fail_if_drop)
    options = {
        "weights": None if weights is None else str(weights),
        "priors": None if priors is None else str(priors),
        "fail_if_drop": fail_if_drop,
    }
    _record(home, "regression", options, summary)
    return summary
