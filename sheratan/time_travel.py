"""Jobs, priors and baselines as they were right after a position of the log (time travel).

DecisionView's slider asks for this. The three views are folded together in one pass over
the log (``Views.as_of_all``), each from its nearest saved snapshot at or before the
position: the views keep a history of snapshots along the log, so a request reads at most
about one snapshot interval of events whatever the log's length. The jobs are the compact
``JobStatusView`` (each job's status), which is all the answer counts; its snapshots are a
few megabytes at 1M events where the full jobs view's are tens.

A log whose history is not written yet (an old home, or events recorded since by something
that does not fold these views) is folded from the newest snapshot there is, and writes the
history on the way, so only the first such request is slow; ``sheratan rebuild`` writes it
ahead of time.
"""

from __future__ import annotations

from typing import Any

from sheratan.home import Home
from sheratan.views import JOB_STATUSES, PRIORS, ViewKind, baselines_kind

#: The baselines' window, as the views module keeps them by default.
BASELINE_WINDOW = 200
#: The views the slider shows, folded together.
SLIDER_KINDS: list[ViewKind[Any]] = [JOB_STATUSES, PRIORS, baselines_kind(BASELINE_WINDOW)]


def views_at(home: Home, position: int) -> dict[str, Any]:
    """Job counts per status, every prior, and each intent's baseline percentiles."""
    jobs, priors, baselines = home.views.as_of_all(SLIDER_KINDS, position)
    return {
        "position": jobs.position,
        "jobs": {"total": len(jobs.statuses), "by_status": dict(sorted(jobs.counts().items()))},
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
