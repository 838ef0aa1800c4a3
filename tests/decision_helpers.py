"""Shared set-up for decision tests: a home, a simulation, and the decisions it recorded."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from events import Event
from events.decisions import DecisionMade, DecisionScored
from sheratan.dispatch.runner import Runner
from sheratan.dispatch.service import SIMULATION, EngineConfig, build_dispatcher, simulate
from sheratan.home import Home, init_home
from sheratan.progress import silent
from sheratan.recording import Ids, VirtualClock
from sheratan.store.ledger import Ledger
from sheratan.views import EventReader
from sheratan.workers.simulated import load_profiles

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_WORKERS = ROOT / "policies" / "workers.example.json"


def simulated_home(path: Path, jobs: int, **config: Any) -> tuple[Home, dict[str, Any]]:
    """A new embedded home at ``path`` and ``simulated`` in it."""
    init_home(path)
    return simulated(path, jobs, **config)


def simulated(path: Path, jobs: int, **config: Any) -> tuple[Home, dict[str, Any]]:
    """The home at ``path`` (either store), opened, after a simulation of ``jobs`` jobs."""
    home = Home.open(path)
    report = simulate(home, EngineConfig.load(**config), load_profiles(EXAMPLE_WORKERS), jobs)
    return home, report


def events(home: Home) -> list[tuple[int, Event]]:
    """Every event of the home's live log (the database's on a PostgreSQL home)."""
    return list(EventReader().events(home.log))


def exported(home: Home) -> Ledger:
    """The JSONL ledger replay reads (``Home.ledger``); on a PostgreSQL home brought up to
    date from the database first (one checked pass), as the CLI does before why, replay,
    audit and sql."""
    if home.marker.postgres is not None:
        from sheratan.postgres.exporter import bring_up_to_date

        bring_up_to_date(home, silent())
    return home.ledger


def decisions(home: Home) -> list[tuple[DecisionMade, DecisionScored | None]]:
    """Every decision node in log order, with its score if it has one."""
    made: dict[Any, DecisionMade] = {}
    scored: dict[Any, DecisionScored] = {}
    for _, event in events(home):
        if isinstance(event, DecisionMade):
            made[event.originator_id] = event
        elif isinstance(event, DecisionScored):
            scored[event.originator_id] = event
    return [(m, scored.get(node)) for node, m in made.items()]


def dispatch_under_unrecorded_budget(home: Home, jobs: int) -> None:
    """Dispatch ``jobs`` simulated jobs under a budget the log does not record (the expensive
    worker, which costs 8, is gated by it): decisions replay cannot re-run alike (major drift)."""
    for i in range(jobs):
        home.app.create_job("llm_call", {"prompt": f"budgeted {i}"}, namespace=SIMULATION)
    dispatcher = build_dispatcher(
        home,
        EngineConfig.load(seed=2),
        clock=VirtualClock(datetime.now(UTC)),
        ids=Ids(seed="budget"),
        outcomes_rng=random.Random(2),
        namespace=SIMULATION,
    )
    dispatcher.constraints = {"budget_remaining": 5.0}
    Runner(dispatcher).drain()
