"""Charging paid jobs: a hold when an attempt is leased, a settlement or release when it ends.

A job with a payer has each attempt charged on a stream of its own (``charge_stream``): the
hold is recorded with the lease, in the same save; when the attempt ends, the dispatcher that
settles the end (``Settler.settle``, from the log, in whichever process) settles the actual
cost of a completed attempt and releases the rest, or releases the whole hold of an attempt
that failed, timed out, or was cancelled or quarantined under it. A late result ends nothing
and so charges nothing. Both events of an attempt are versions 1 and 2 of its charge stream,
so the store's version check refuses a second hold or a second settlement.

The hold is the chosen worker's cost hint: the same estimate the budget gate held against
the account's available funds when it let the worker be a candidate.
"""

from __future__ import annotations

from typing import Any

from events.accounts import AccountHeld, AccountReleased, AccountSettled, to_micros
from projections.jobs import LEASED, JobState
from projections.workers import WorkerState
from sheratan.dispatch.context import DispatchContext
from sheratan.streams import charge_stream


def hold_estimate(worker: WorkerState) -> int:
    """What an attempt on ``worker`` holds, in micro-units: its cost hint."""
    return to_micros(worker.cost_hint)


def hold(context: DispatchContext, job: JobState, worker: WorkerState, decision_id: Any) -> None:
    """Record the hold of the attempt being leased (``job`` as it was before the lease)."""
    if job.payer is None:
        return
    attempt = job.attempt + 1
    context.recorder.record(
        AccountHeld(
            originator_id=charge_stream(job.payer, job.id, attempt),
            originator_version=1,
            timestamp=context.clock.now(),
            account_id=job.payer,
            job_id=job.id,
            attempt=attempt,
            amount_micros=hold_estimate(worker),
            worker=worker.id,
            decision_id=decision_id,
        )
    )


def settle_charge(context: DispatchContext, job: JobState) -> None:
    """Settle or release the open hold of the job's ended attempt (nothing if none is open)."""
    held = context.views.accounts.holds.get((job.id, job.attempt))
    if held is None or job.status in LEASED:
        return
    now = context.clock.now()
    common: dict[str, Any] = {
        "originator_id": held.stream,
        "originator_version": 2,
        "timestamp": now,
        "account_id": held.account_id,
        "job_id": job.id,
        "attempt": job.attempt,
    }
    if job.status == "completed":
        cost = to_micros(job.metrics.cost) if job.metrics is not None else 0
        released = max(0, held.amount_micros - cost)
        context.recorder.record(
            AccountSettled(**common, cost_micros=cost, released_micros=released)
        )
        return
    context.recorder.record(
        AccountReleased(**common, amount_micros=held.amount_micros, why=job.status)
    )
