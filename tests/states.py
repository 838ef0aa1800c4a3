"""Job and worker states for tests that exercise gates and workers without a log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from projections.jobs import JobState
from projections.workers import WorkerState
from sheratan.app import payload_hash

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def job_state(kind: str, payload: dict[str, Any], **changes: Any) -> JobState:
    fields: dict[str, Any] = {
        "id": uuid4(),
        "version": 2,
        "status": "queued",
        "kind": kind,
        "payload": payload,
        "payload_hash": payload_hash(payload),
        "priority": "normal",
        "timeout_seconds": 60.0,
        "depends_on": (),
        "idempotency_key": None,
        "max_retries": 1,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return JobState(**(fields | changes))


def worker_state(worker_id: str, **changes: Any) -> WorkerState:
    fields: dict[str, Any] = {
        "id": worker_id,
        "stream": uuid4(),
        "version": 1,
        "kinds": ("file_read", "llm_call", "shell_exec"),
        "transport": "local",
        "cost_hint": 1.0,
        "profile": None,
        "registered_at": NOW,
        "last_seen": NOW,
    }
    return WorkerState(**(fields | changes))
