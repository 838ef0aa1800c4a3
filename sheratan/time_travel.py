"""Jobs, priors and baselines as they were right after a position of the log (time travel).

DecisionView's slider asks for this; the views are folded up to the position and not saved
(``Views.as_of``). A fold reads the log from its start, so positions past ``MAX_FOLD`` are
refused rather than left to run for long (serving them from saved view snapshots is the
way to lift that bound).
"""

from __future__ import annotations

from typing import Any

from sheratan.home import Home
from sheratan.views import JOBS, PRIORS, baselines_kind

#: The furthest position folded for one request.
MAX_FOLD = 200_000
#: The baselines' window, as the views module keeps them by default.
BASELINE_WINDOW = 200


class TooFarError(ValueError):
    """The position lies past what one request folds."""


def views_at(home: Home, position: int) -> dict[str, Any]:
    """Job counts per status, every prior, and each intent's baseline percentiles."""
    at = min(position, home.ledger.last_position())
    if at > MAX_FOLD:
        msg = f"position {at} is past {MAX_FOLD}, the furthest one request folds"
        raise TooFarError(msg)
    views = home.views
    jobs = views.as_of(JOBS, at)
    priors = views.as_of(PRIORS, at)
    baselines = views.as_of(baselines_kind(BASELINE_WINDOW), at)
    return {
        "position": at,
        "jobs": {"total": len(jobs.jobs), "by_status": dict(sorted(jobs.counts().items()))},
        "priors": [
            {"intent": intent, "key": key, "mean": p.mean_score, "visits": p.visits}
            for (intent, key), p in sorted(priors.priors.items())
        ],
        "baselines": [
            dict(
                zip(
                    ("intent", "latency_p50_ms", "latency_p95_ms", "cost_p50", "cost_p95"),
                    (intent, *window.percentiles()),
                    strict=True,
                ),
                observations=len(window),
            )
            for intent, window in sorted(baselines.intents.items())
        ],
    }
