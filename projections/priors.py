"""Priors per (intent, action key): visits, mean score, the last 20 scores. A pure fold."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

import msgspec

from events import Event
from events.decisions import PriorsSeeded, PriorsUpdated

LAST_SCORES = 20


class Prior(msgspec.Struct, frozen=True):
    visits: int = 0
    mean_score: float = 0.0
    last_scores: tuple[float, ...] = ()


NO_PRIOR = Prior()


def apply_prior(prior: Prior, event: Event) -> Prior:
    """Seed a prior, or fold one more observed score into it (incremental mean)."""
    if isinstance(event, PriorsSeeded):
        return Prior(event.visits, event.mean_score, event.last_scores[-LAST_SCORES:])
    if isinstance(event, PriorsUpdated):
        visits = prior.visits + 1
        mean = prior.mean_score + (event.score - prior.mean_score) / visits
        return Prior(visits, mean, (*prior.last_scores, event.score)[-LAST_SCORES:])
    msg = f"{type(event).__name__} is not a priors event"
    raise TypeError(msg)


class PriorsView:
    """Every (intent, action key)'s prior, and each priors stream's version."""

    #: The event classes this view folds (others only advance its position).
    FOLDS: ClassVar[frozenset[type[Event]]] = frozenset({PriorsSeeded, PriorsUpdated})

    def __init__(self) -> None:
        self.position = 0
        self.priors: dict[tuple[str, str], Prior] = {}
        self.streams: dict[tuple[str, str], tuple[UUID, int]] = {}
        self.totals: dict[str, int] = {}

    def apply(self, position: int, event: Event) -> None:
        if isinstance(event, PriorsSeeded | PriorsUpdated):
            key = (event.intent, event.action_key)
            before = self.priors.get(key, NO_PRIOR)
            after = apply_prior(before, event)
            self.priors[key] = after
            self.totals[event.intent] = (
                self.totals.get(event.intent, 0) + after.visits - before.visits
            )
            self.streams[key] = (event.originator_id, event.originator_version)
        self.position = position

    def get(self, intent: str, action_key: str) -> Prior:
        return self.priors.get((intent, action_key), NO_PRIOR)

    def intent_visits(self, intent: str) -> int:
        """N of the UCB bonus: all visits of the intent's actions."""
        return self.totals.get(intent, 0)

    def summary(self) -> dict[str, int]:
        return {"priors": len(self.priors), "visits": sum(self.totals.values())}
