"""Simulated workers: profile-driven outcomes on virtual time (nothing sleeps).

Latency is lognormal through the profile's p50 and p95; success is Bernoulli; quality, cost
and risk are fixed per worker. All randomness comes from the run's seeded generator.
"""

from __future__ import annotations

import math
import random
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import msgspec

from events.decisions import ErrorInfo, Percentiles
from projections.jobs import JobState
from projections.workers import WorkerState
from sheratan.packaged import policy_file
from sheratan.workers.outcome import Outcome

Z95 = 1.6448536269514722  # the standard normal's 95th percentile


class WorkerProfile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    kinds: tuple[str, ...]
    success: float
    latency_ms: Percentiles
    cost: float
    quality: float
    risk: float = 0.0

    def __post_init__(self) -> None:
        for name in ("success", "quality", "risk"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                msg = f"worker {self.id}: {name} must be within 0..1, not {value}"
                raise ValueError(msg)
        if not 0 < self.latency_ms.p50 <= self.latency_ms.p95:
            msg = f"worker {self.id}: latency_ms needs 0 < p50 <= p95"
            raise ValueError(msg)
        if self.cost < 0:
            msg = f"worker {self.id}: cost must not be negative"
            raise ValueError(msg)


class ProfileFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    workers: tuple[WorkerProfile, ...]


class ProfileError(ValueError):
    """A workers file that does not fit its shape."""


#: The example profiles shipped with Sheratan (``simulate``'s default workers file).
EXAMPLE_WORKERS = policy_file("workers.example.json")


def load_profiles(path: Path | Traversable) -> tuple[WorkerProfile, ...]:
    try:
        profiles = msgspec.json.decode(path.read_bytes(), type=ProfileFile).workers
    except FileNotFoundError:
        raise ProfileError(f"workers file {path} does not exist") from None
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as error:
        raise ProfileError(f"{path}: {error}") from None
    except RecursionError:
        raise ProfileError(f"{path}: nested too deeply") from None
    if not profiles:
        raise ProfileError(f"{path}: no workers")
    ids = [p.id for p in profiles]
    if len(set(ids)) != len(ids):
        raise ProfileError(f"{path}: worker ids must be unique")
    return profiles


class SimulatedTransport:
    """Executes a job on a simulated worker using the profile stored with its registration."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._profiles: dict[str, WorkerProfile] = {}

    def profile(self, worker: WorkerState) -> WorkerProfile:
        profile = self._profiles.get(worker.id)
        if profile is None:
            profile = msgspec.convert(
                {"id": worker.id, "kinds": worker.kinds, **(worker.profile or {})}, WorkerProfile
            )
            self._profiles[worker.id] = profile
        return profile

    def execute(self, job: JobState, worker: WorkerState) -> Outcome:
        p = self.profile(worker)
        mu = math.log(p.latency_ms.p50)
        sigma = (math.log(p.latency_ms.p95) - mu) / Z95
        latency = self.rng.lognormvariate(mu, sigma)
        if self.rng.random() < p.success:
            return Outcome(True, latency, p.cost, p.quality, p.risk, result={"simulated": True})
        error = ErrorInfo("simulated_failure", f"{p.id} failed (simulated)")
        return Outcome(False, latency, p.cost, 0.0, p.risk, error=error)


def check_worker_profile(
    worker_id: str, kinds: tuple[str, ...], transport: str, profile: dict[str, Any] | None
) -> None:
    """A simulated worker needs a complete profile; raise ProfileError naming what is wrong."""
    if transport != "simulated":
        return
    if profile is None:
        raise ProfileError(f"simulated worker {worker_id} needs --profile")
    try:
        msgspec.convert({"id": worker_id, "kinds": kinds, **profile}, WorkerProfile)
    except (msgspec.ValidationError, ValueError) as error:
        raise ProfileError(f"profile of {worker_id}: {error}") from None
