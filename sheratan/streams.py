"""Deterministic stream ids for things named by text: a worker, a prior, a baseline.

Deriving the id from the name (uuid5) makes "register twice" and "two dispatchers update the
same prior" collide on (stream, version), which the store refuses, instead of forking state.
"""

from __future__ import annotations

from functools import lru_cache
from uuid import UUID, uuid5

NAMESPACE = UUID("8b7d0a52-4f0e-4a7c-9a55-2f7c1d3e6b90")


@lru_cache(maxsize=4096)
def worker_stream(worker_id: str) -> UUID:
    return uuid5(NAMESPACE, f"worker:{worker_id}")


@lru_cache(maxsize=4096)
def priors_stream(intent: str, action_key: str) -> UUID:
    return uuid5(NAMESPACE, f"priors:{intent}:{action_key}")


@lru_cache(maxsize=1024)
def baseline_stream(intent: str) -> UUID:
    return uuid5(NAMESPACE, f"baseline:{intent}")


@lru_cache(maxsize=64)
def policy_stream(policy_id: str) -> UUID:
    return uuid5(NAMESPACE, f"policy:{policy_id}")


@lru_cache(maxsize=4096)
def account_stream(account_id: str) -> UUID:
    return uuid5(NAMESPACE, f"account:{account_id}")


def charge_stream(account_id: str, job_id: UUID, attempt: int) -> UUID:
    """The stream of one attempt's charge: its hold (version 1), then its settlement or
    release (version 2, which the store grants once)."""
    return uuid5(NAMESPACE, f"charge:{account_id}:{job_id}:{attempt}")


@lru_cache(maxsize=64)
def system_stream(namespace: str = "") -> UUID:
    """The system's state and alarms, one stream per namespace ("" is real work)."""
    return uuid5(NAMESPACE, f"system:{namespace}")


def self_heal_stream(decision_id: UUID) -> UUID:
    """The automatic recovery a recovery decision took (its ``self_heal.*`` events)."""
    return uuid5(NAMESPACE, f"self_heal:{decision_id}")
