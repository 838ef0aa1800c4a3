"""A dispatcher round with process workers that no daemon serves: the test reports each
leased attempt as a daemon would (``sheratan.workers.report``), with the outcome it wants."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cli_helpers import invoke

from events import utc_now
from sheratan.home import Home
from sheratan.views import JOBS
from sheratan.workers.outcome import Outcome
from sheratan.workers.report import claim_event, outcome_event

DONE = Outcome(ok=True, latency_ms=1.0, quality=1.0, result={"done": True})


def run_round(home: Path, outcomes: Mapping[str, Outcome], *dispatch_options: str) -> None:
    """Dispatch every ready job, report each leased attempt (``report_attempts``), then
    dispatch again so the ends are settled (charges, follow-ups, retries)."""
    invoke(home, "dispatch", "--until-idle", *dispatch_options)
    report_attempts(home, outcomes)
    invoke(home, "dispatch", "--until-idle", *dispatch_options)


def report_attempts(home: Path, outcomes: Mapping[str, Outcome]) -> None:
    """Report every leased attempt as its worker would, with ``outcomes[payload note]`` (DONE
    when its note is not named)."""
    opened = Home.open(home)
    try:
        for job in list(opened.views.current(JOBS).jobs.values()):
            if job.status != "dispatched":
                continue
            opened.app.save(claim_event(job, utc_now()))
            started = opened.app.get_job(job.id)
            outcome = outcomes.get(str(job.payload.get("note")), DONE)
            worker = started.worker or ""
            opened.app.save(outcome_event(started, worker, started.attempt, outcome, utc_now()))
    finally:
        opened.close()
