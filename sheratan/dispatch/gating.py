"""What the system state lets a dispatcher round do, and the thresholds that move the state.

The numbers are ``policies/system.json``, with a user file merged over it like
``policies/gates.json``. Gating reads only the folded system state (``projections.system``),
so replay, folding the same log, sees the same state at every decision:

- PAUSED: no lease at all; expired leases are still swept and results still settled.
- RECOVERY: only recovery work, jobs that had an attempt already (a retry or fallback a
  recovery decision scheduled, an operator's requeue); no job gets its first lease.
- DEGRADED and REFLECTIVE: ``lease_factor`` of the round's leases (at least one), at most
  ``max_in_flight`` open attempts, and epsilon and UCB c scaled by ``exploration_factor``
  (each decision records the epsilon and c it ran with, so replay re-runs it with them).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Literal

import msgspec

from projections.jobs import JobState
from sheratan.decide.policy import load_merged
from sheratan.decide.selection import SelectionPolicy

Severity = Literal["degrade", "recover"]


class _Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool
    severity: Severity


class _Thresholds(_Rule, frozen=True, kw_only=True):
    """Raised above ``raise_above``, cleared at or below ``clear_below`` (the gap between
    them is the hysteresis that keeps an alarm from flapping)."""

    raise_above: float
    clear_below: float

    def __post_init__(self) -> None:
        if self.clear_below > self.raise_above:
            msg = "clear_below must not be above raise_above"
            raise ValueError(msg)


class RateRule(_Thresholds, frozen=True, kw_only=True):
    """A share of the last ``window`` attempt outcomes (once ``min_attempts`` are known)."""

    window: int
    min_attempts: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.min_attempts <= self.window <= 1000:
            msg = "rules need 1 <= min_attempts <= window <= 1000"
            raise ValueError(msg)


class SilentRule(_Thresholds, frozen=True, kw_only=True):
    """How many worker daemons holding an attempt were not heard of for ``silent_after_s``."""

    silent_after_s: float


class DriftRule(_Rule, frozen=True, kw_only=True, rename={"threshold": "lambda"}):
    """Page-Hinkley on the attempts' normalized latency; cleared after ``clear_after``
    outcomes without a new alarm."""

    delta: float
    threshold: float
    clear_after: int


class Rules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    failure_rate: RateRule
    timeouts: RateRule
    silent_workers: SilentRule
    queue_depth: _Thresholds
    drift: DriftRule


class Degraded(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    lease_factor: float
    max_in_flight: int
    exploration_factor: float

    def __post_init__(self) -> None:
        if not 0 < self.lease_factor <= 1 or not 0 <= self.exploration_factor <= 1:
            msg = "lease_factor must be within (0, 1] and exploration_factor within [0, 1]"
            raise ValueError(msg)
        if self.max_in_flight < 1:
            msg = "max_in_flight must be at least 1"
            raise ValueError(msg)


class SystemPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    degraded: Degraded
    rules: Rules


def load_system_policy(path: Path | None = None) -> SystemPolicy:
    """The shipped system policy with ``path`` merged over it."""
    return load_merged("system.json", path, SystemPolicy).policy


#: The states that dispatch as DEGRADED does.
CAUTIOUS = frozenset({"DEGRADED", "REFLECTIVE"})


def leases_allowed(policy: SystemPolicy, state: str, wanted: int, in_flight: int) -> int:
    """How many leases a round may take in ``state`` when it wants ``wanted``."""
    if state == "PAUSED":
        return 0
    if state in CAUTIOUS:
        scaled = max(1, math.floor(wanted * policy.degraded.lease_factor))
        return max(0, min(scaled, policy.degraded.max_in_flight - in_flight))
    return wanted


def admits(state: str, job: JobState) -> bool:
    """Whether a ready job may be leased in ``state`` (RECOVERY: only jobs tried before)."""
    return state != "RECOVERY" or job.attempt > 0


def selection_in(policy: SystemPolicy, state: str, base: SelectionPolicy) -> SelectionPolicy:
    """The selection policy decisions run with in ``state``: less exploration when cautious."""
    if state not in CAUTIOUS:
        return base
    factor = policy.degraded.exploration_factor
    return replace(base, epsilon=base.epsilon * factor, c=base.c * factor)


def held_back(state: str) -> str | None:
    """Why the queue does not move (or moves slowly) in ``state``; None when it moves freely."""
    return {
        "PAUSED": "PAUSED: nothing is dispatched; queued jobs wait (leases are still swept "
        "and results settled)",
        "RECOVERY": "RECOVERY: only retries and fallbacks of jobs tried before are leased; "
        "new jobs wait",
        "DEGRADED": "DEGRADED: fewer leases per round and in flight, less exploration",
        "REFLECTIVE": "REFLECTIVE: dispatching as DEGRADED while an operator looks",
    }.get(state)
