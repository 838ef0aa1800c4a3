"""Latency and cost baselines: rolling windows per intent and per (intent, action key).

Score v1 normalizes L and C against the intent's window across all its actions (so a slow
worker scores lower than a fast one); the per-action windows serve drift reports.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Any, ClassVar
from uuid import UUID

from events import Event
from events.decisions import BaselineUpdated


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values (q in 0..1)."""
    if not sorted_values:
        msg = "percentile of no values"
        raise ValueError(msg)
    at = (len(sorted_values) - 1) * q
    low = int(at)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (at - low)


class Window:
    """The last ``size`` (latency_ms, cost) observations, with their p50/p95.

    Each series is also kept sorted (insort and removal by bisection), so the percentiles
    that every score needs cost O(1) to read instead of a sort per decision.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.latency_ms: deque[float] = deque()
        self.cost: deque[float] = deque()
        self._latency_sorted: list[float] = []
        self._cost_sorted: list[float] = []

    def add(self, latency_ms: float, cost: float) -> None:
        if len(self.latency_ms) == self.size:
            _remove(self._latency_sorted, self.latency_ms.popleft())
            _remove(self._cost_sorted, self.cost.popleft())
        self.latency_ms.append(latency_ms)
        self.cost.append(cost)
        bisect.insort(self._latency_sorted, latency_ms)
        bisect.insort(self._cost_sorted, cost)

    def __len__(self) -> int:
        return len(self.latency_ms)

    def percentiles(self) -> tuple[float, float, float, float]:
        """(latency p50, latency p95, cost p50, cost p95) of the window."""
        latency, cost = self._latency_sorted, self._cost_sorted
        return (
            percentile(latency, 0.5),
            percentile(latency, 0.95),
            percentile(cost, 0.5),
            percentile(cost, 0.95),
        )


def _remove(sorted_values: list[float], value: float) -> None:
    del sorted_values[bisect.bisect_left(sorted_values, value)]


class BaselinesView:
    """Rolling windows of observed latency and cost (window size from scoring.json)."""

    #: The event classes this view folds (others only advance its position).
    FOLDS: ClassVar[frozenset[type[Event]]] = frozenset({BaselineUpdated})

    def __init__(self, window: int = 200) -> None:
        self.position = 0
        self.window = window
        self.intents: dict[str, Window] = {}
        self.actions: dict[tuple[str, str], Window] = {}
        self.streams: dict[str, tuple[UUID, int]] = {}

    def apply(self, position: int, event: Event) -> None:
        if isinstance(event, BaselineUpdated):
            self.window_for(self.intents, event.intent).add(event.latency_ms, event.cost)
            key = (event.intent, event.action_key)
            self.window_for(self.actions, key).add(event.latency_ms, event.cost)
            self.streams[event.intent] = (event.originator_id, event.originator_version)
        self.position = position

    def window_for(self, windows: dict[Any, Window], key: Any) -> Window:
        window = windows.get(key)
        if window is None:
            window = windows[key] = Window(self.window)
        return window

    def intent(self, intent: str) -> Window | None:
        return self.intents.get(intent)

    def summary(self) -> dict[str, int]:
        return {"intents": len(self.intents), "actions": len(self.actions), "window": self.window}
