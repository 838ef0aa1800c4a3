"""Latency and cost baselines: rolling windows per intent and per (intent, action key).

Score v1 normalizes L and C against the intent's window across all its actions (so a slow
worker scores lower than a fast one); the per-action windows serve drift reports.
"""

from __future__ import annotations

from collections import deque
from typing import Any
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
    """The last ``size`` (latency_ms, cost) observations, with their p50/p95."""

    def __init__(self, size: int) -> None:
        self.latency_ms: deque[float] = deque(maxlen=size)
        self.cost: deque[float] = deque(maxlen=size)
        self._cached: tuple[float, float, float, float] | None = None

    def add(self, latency_ms: float, cost: float) -> None:
        self.latency_ms.append(latency_ms)
        self.cost.append(cost)
        self._cached = None

    def __len__(self) -> int:
        return len(self.latency_ms)

    def percentiles(self) -> tuple[float, float, float, float]:
        """(latency p50, latency p95, cost p50, cost p95) of the window."""
        if self._cached is None:
            latency = sorted(self.latency_ms)
            cost = sorted(self.cost)
            self._cached = (
                percentile(latency, 0.5),
                percentile(latency, 0.95),
                percentile(cost, 0.5),
                percentile(cost, 0.95),
            )
        return self._cached


class BaselinesView:
    """Rolling windows of observed latency and cost (window size from scoring.json)."""

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
