"""The follow-ups a completed attempt's result asks for, as events (``events.chains``).

``followup_events`` is a pure function of the parent job, the chains and jobs as the log has
them, and the chain limits: the dispatcher that settles a completed attempt records what it
returns in the same save as the attempt's score. Each request becomes exactly one event on
its own stream: the follow-up job (created and queued, inheriting the parent's task,
mission, namespace, timeout and retries; priority the request's or the parent's), or a
refusal with the reason. Requests are taken in order, so when a limit is reached the first
ones are made and the rest refused.

A follow-up is refused when it is not ``{"kind": …, "payload": {…}}`` (optionally with a
``priority``), when its kind or payload would be refused at creation, when the chain would
go past ``chains.max_depth``, ``max_jobs``, ``max_files`` (follow-ups of a kind that writes)
or ``max_bytes`` (of follow-up payloads), or when the chain already holds a job of the same
kind and payload (folded into that one: the refusal names it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from events import Event
from events.chains import ChainLink, FollowupRefused, followup_stream
from events.jobs import PRIORITIES, JobCreated, JobQueued
from projections.chains import ChainState, ChainsView, payload_bytes, seen_key
from projections.jobs import JobState, JobsView
from sheratan.app import check_job_input
from sheratan.inputs import InvalidInputError
from sheratan.limits import ChainLimit
from sheratan.workers.kinds import WRITE_KINDS

#: The key of a result that asks for follow-ups.
FOLLOWUPS = "followups"


def requested(job: JobState) -> list[Any]:
    """The follow-up requests of a completed job's result (none if it asks for none)."""
    asked = (job.result or {}).get(FOLLOWUPS)
    return asked if isinstance(asked, list) else []


class _Tally:
    """What the chain holds so far, counting the follow-ups made by this result."""

    def __init__(self, chain: ChainState | None, root: JobState) -> None:
        self.jobs = len(chain.jobs) if chain is not None else 1
        kinds = chain.kinds if chain is not None else {}
        self.files = sum(count for kind, count in kinds.items() if kind in WRITE_KINDS)
        self.bytes = chain.bytes if chain is not None else 0
        self.seen = dict(chain.seen) if chain is not None else {}
        self.seen.setdefault(seen_key(root.kind, root.payload_hash), root.id)


def followup_events(
    parent: JobState,
    chains: ChainsView,
    jobs: JobsView,
    limits: ChainLimit,
    now: datetime,
) -> list[Event]:
    """The events that answer every follow-up request of ``parent``'s completed attempt."""
    asked = requested(parent)
    if not asked:
        return []
    chain_id = parent.chain.chain_id if parent.chain is not None else parent.id
    depth = (parent.chain.depth if parent.chain is not None else 0) + 1
    tally = _Tally(chains.chains.get(chain_id), jobs.jobs.get(chain_id, parent))
    events: list[Event] = []
    for index, request in enumerate(asked):
        link = ChainLink(
            chain_id=chain_id, depth=depth, parent=parent.id, attempt=parent.attempt, index=index
        )
        stream = followup_stream(parent.id, parent.attempt, index)
        kind, payload, priority, problem = _read(request, parent)
        digest = None
        if problem is None:
            try:
                digest = check_job_input(
                    kind, payload, priority, parent.timeout_seconds, (), parent.max_retries
                )
            except InvalidInputError as refused:
                problem = str(refused)
        duplicate = tally.seen.get(seen_key(kind, digest)) if digest is not None else None
        problem = problem or _over_limit(tally, limits, depth, kind, payload)
        if problem is None and duplicate is not None:
            problem = f"a duplicate of job {duplicate} (the same kind and payload)"
        if problem is not None:
            events.append(
                FollowupRefused(
                    originator_id=stream,
                    originator_version=1,
                    timestamp=now,
                    chain_id=chain_id,
                    depth=depth,
                    parent=parent.id,
                    attempt=parent.attempt,
                    index=index,
                    kind=kind,
                    payload_hash=digest,
                    reason=problem,
                    duplicate_of=duplicate,
                )
            )
            continue
        assert digest is not None
        tally.jobs += 1
        tally.files += kind in WRITE_KINDS
        tally.bytes += payload_bytes(payload)
        tally.seen[seen_key(kind, digest)] = stream
        events += _created(stream, parent, link, kind, payload, digest, priority, now)
    return events


def _read(request: Any, parent: JobState) -> tuple[str, dict[str, Any], Any, str | None]:
    """(kind, payload, priority, None) of a well-formed request, or why it is not one."""
    if not isinstance(request, dict) or not isinstance(request.get("kind"), str):
        return "", {}, None, 'a follow-up must be {"kind": ..., "payload": {...}}'
    extra = set(request) - {"kind", "payload", "priority"}
    if extra:
        return request["kind"], {}, None, f"a follow-up has no field {sorted(extra)[0]!r}"
    payload = request.get("payload", {})
    if not isinstance(payload, dict):
        return request["kind"], {}, None, "a follow-up's payload must be a JSON object"
    priority = request.get("priority", parent.priority)
    if priority not in PRIORITIES:
        return request["kind"], payload, None, f"priority must be one of {', '.join(PRIORITIES)}"
    return request["kind"], payload, priority, None


def _over_limit(
    tally: _Tally, limits: ChainLimit, depth: int, kind: str, payload: dict[str, Any]
) -> str | None:
    if depth > limits.max_depth:
        return f"depth {depth} is past chains.max_depth {limits.max_depth}"
    if tally.jobs >= limits.max_jobs:
        return f"the chain holds {tally.jobs} jobs (chains.max_jobs is {limits.max_jobs})"
    if kind in WRITE_KINDS and tally.files >= limits.max_files:
        return f"the chain writes {tally.files} files (chains.max_files is {limits.max_files})"
    size = payload_bytes(payload)
    if tally.bytes + size > limits.max_bytes:
        return (
            f"the chain's follow-ups would hold {tally.bytes + size} bytes "
            f"(chains.max_bytes is {limits.max_bytes})"
        )
    return None


def _created(
    stream: UUID,
    parent: JobState,
    link: ChainLink,
    kind: str,
    payload: dict[str, Any],
    digest: str,
    priority: Any,
    now: datetime,
) -> list[Event]:
    created = JobCreated(
        originator_id=stream,
        originator_version=1,
        timestamp=now,
        task_id=parent.task_id,
        mission_id=parent.mission_id,
        kind=kind,
        payload=payload,
        payload_hash=digest,
        priority=priority,
        timeout_seconds=parent.timeout_seconds,
        max_retries=parent.max_retries,
        namespace=parent.namespace,
        chain=link,
        payer=parent.payer,
        budget_micros=parent.budget_micros,
    )
    queued = JobQueued(originator_id=stream, originator_version=2, timestamp=now)
    return [created, queued]


def chain_members(chains: ChainsView, job_id: UUID) -> list[UUID]:
    """Every job of the chain ``job_id`` belongs to, the first one first ([] outside any)."""
    chain_id = chains.chain_of.get(job_id)
    return list(chains.chains[chain_id].jobs) if chain_id is not None else []
