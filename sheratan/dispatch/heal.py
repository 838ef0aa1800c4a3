"""SELF_HEAL made visible: every automatic recovery as a ``self_heal.taken`` event, and its
outcome as ``self_heal.resolved`` once known.

A recovery decision that chose RETRY, FALLBACK or QUARANTINE (ABORT gives up: no heal) is a
heal on the stream ``self_heal_stream(decision)``: taken when the decision is made, resolved
when the decision is scored (its next attempt ``healed`` or ``failed``; ``not_attempted``
when the job ended before it ran). The system's own heals (a rule moving OPERATIONAL to
DEGRADED or RECOVERY) live on the system stream (``sheratan.dispatch.watch``).
"""

from __future__ import annotations

from datetime import datetime
from uuid import uuid5

from events.decisions import DecisionMade, DecisionScored
from events.system import HealOutcome, SelfHealResolved, SelfHealTaken, SystemStateChanged
from projections.jobs import JobState
from projections.system import SystemState
from sheratan.dispatch.candidates import RECOVER
from sheratan.streams import self_heal_stream, system_stream

#: A scored recovery decision's status, as the outcome of its heal.
_OUTCOMES: dict[str, HealOutcome] = {
    "recovered": "healed",
    "success": "healed",
    "failed": "failed",
    "skipped": "not_attempted",
}


def is_heal(made: DecisionMade) -> bool:
    """Whether a decision took an automatic recovery (not ABORT, not all gated)."""
    return (
        made.intent == RECOVER and made.chosen >= 0 and made.candidates[made.chosen].type != "ABORT"
    )


def heal_taken(job: JobState, made: DecisionMade, now: datetime) -> SelfHealTaken:
    """The heal a recovery decision took on the job's failed or timed-out attempt."""
    chosen = made.candidates[made.chosen]
    stream = self_heal_stream(made.originator_id)
    return SelfHealTaken(
        originator_id=stream,
        originator_version=1,
        timestamp=now,
        namespace=job.namespace,
        heal_id=stream,
        trigger="timeout" if job.status == "timed_out" else "failure",
        action=chosen.type,
        confidence=chosen.probability,
        detail=f"{chosen.key} after attempt {job.attempt} on {job.worker} {job.status}",
        decision_id=made.originator_id,
        job_id=job.id,
    )


def heal_resolved(made: DecisionMade, scored: DecisionScored, namespace: str) -> SelfHealResolved:
    """The outcome of a heal, from its recovery decision's score."""
    stream = self_heal_stream(made.originator_id)
    error = f": {scored.error.code}" if scored.error is not None else ""
    return SelfHealResolved(
        originator_id=stream,
        originator_version=2,
        timestamp=scored.timestamp,
        namespace=namespace,
        heal_id=stream,
        outcome=_OUTCOMES[scored.status],
        detail=f"{scored.status}{error}",
        decision_id=made.originator_id,
    )


def system_heal_taken(state: SystemState, moved: SystemStateChanged, rule: str) -> SelfHealTaken:
    """The heal of a rule's move away from OPERATIONAL (``moved``, already folded into
    ``state``): the next event of the system stream."""
    heal_id = uuid5(moved.originator_id, f"heal:{moved.originator_version}")
    return SelfHealTaken(
        originator_id=moved.originator_id,
        originator_version=state.version + 1,
        timestamp=moved.timestamp,
        namespace=state.namespace,
        heal_id=heal_id,
        trigger=f"alarm:{rule}",
        action=f"system {moved.to_state}",
        confidence=1.0,
        detail=moved.reason,
    )


def system_heal_resolved(state: SystemState, now: datetime) -> SelfHealResolved | None:
    """The outcome of the open system heal once the state is OPERATIONAL again: ``healed``
    when a rule brought it back, ``overridden`` when an operator did; else None."""
    if state.healing is None or state.state != "OPERATIONAL":
        return None
    by_rule = state.cause.startswith("rule:")
    return SelfHealResolved(
        originator_id=system_stream(state.namespace),
        originator_version=state.version + 1,
        timestamp=now,
        namespace=state.namespace,
        heal_id=state.healing,
        outcome="healed" if by_rule else "overridden",
        detail=state.reason,
    )
