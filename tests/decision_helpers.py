"""Shared set-up for decision tests: a home, a simulation, and the decisions it recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from events import Event
from events.decisions import DecisionMade, DecisionScored
from sheratan.dispatch.service import EngineConfig, simulate
from sheratan.home import Home, init_home
from sheratan.views import EventReader
from sheratan.workers.simulated import load_profiles

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_WORKERS = ROOT / "policies" / "workers.example.json"


def simulated_home(path: Path, jobs: int, **config: Any) -> tuple[Home, dict[str, Any]]:
    init_home(path)
    home = Home.open(path)
    report = simulate(home, EngineConfig.load(**config), load_profiles(EXAMPLE_WORKERS), jobs)
    return home, report


def events(home: Home) -> list[tuple[int, Event]]:
    return list(EventReader().events(home.ledger))


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
