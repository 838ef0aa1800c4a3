"""The system state machine: which state may follow which. Checked before recording.

    OPERATIONAL  normal work
    DEGRADED     fewer leases per round, fewer in flight, less exploration
    REFLECTIVE   an operator's look at the system: dispatch as DEGRADED, rules never leave it
    RECOVERY     only recovery work: scheduled retries and fallbacks of jobs already in flight
    PAUSED       nothing is dispatched; leases are still swept and results still settled

Legal transitions (``ALLOWED``; a state never follows itself):

    OPERATIONAL -> DEGRADED, REFLECTIVE, RECOVERY, PAUSED
    DEGRADED    -> OPERATIONAL, REFLECTIVE, RECOVERY, PAUSED
    REFLECTIVE  -> OPERATIONAL, DEGRADED, PAUSED
    RECOVERY    -> OPERATIONAL, DEGRADED, PAUSED
    PAUSED      -> OPERATIONAL, DEGRADED, RECOVERY

REFLECTIVE is entered from normal or degraded work only (recovery finishes first), and a
pause ends into work, never into reflection. Anomaly rules move only a state that a rule or
nobody set: what an operator chose (PAUSED, REFLECTIVE, a DEGRADED by hand) stays until an
operator changes it (``sheratan.dispatch.watch``).
"""

from __future__ import annotations

from datetime import datetime

from events.system import SYSTEM_STATES, SystemStateChanged, SystemStateName
from projections.system import SystemState
from sheratan.inputs import InvalidInputError
from sheratan.streams import system_stream

ALLOWED: dict[str, frozenset[str]] = {
    "OPERATIONAL": frozenset({"DEGRADED", "REFLECTIVE", "RECOVERY", "PAUSED"}),
    "DEGRADED": frozenset({"OPERATIONAL", "REFLECTIVE", "RECOVERY", "PAUSED"}),
    "REFLECTIVE": frozenset({"OPERATIONAL", "DEGRADED", "PAUSED"}),
    "RECOVERY": frozenset({"OPERATIONAL", "DEGRADED", "PAUSED"}),
    "PAUSED": frozenset({"OPERATIONAL", "DEGRADED", "RECOVERY"}),
}

#: The cause recorded for a transition asked for on the CLI or the API.
OPERATOR = "operator"


class IllegalSystemTransitionError(InvalidInputError):
    """A transition the state machine does not allow; nothing was recorded."""


def check_state_name(name: str) -> SystemStateName:
    """``name`` as a state (case-insensitive), or a clear refusal naming the states."""
    upper = name.upper()
    if upper not in SYSTEM_STATES:
        msg = f"no system state {name!r} (states: {', '.join(SYSTEM_STATES)})"
        raise IllegalSystemTransitionError(msg)
    return upper  # type: ignore[return-value]


def check_system_transition(current: str, target: str) -> None:
    """Raise IllegalSystemTransitionError unless ``target`` may follow ``current``."""
    if target == current:
        msg = f"the system is already {current}"
        raise IllegalSystemTransitionError(msg)
    allowed = ALLOWED[current]
    if target not in allowed:
        msg = f"the system is {current}: it may move to {', '.join(sorted(allowed))}, not {target}"
        raise IllegalSystemTransitionError(msg)


def transition_event(
    state: SystemState,
    target: SystemStateName,
    now: datetime,
    *,
    reason: str,
    cause: str,
    alarm: str | None = None,
) -> SystemStateChanged:
    """The namespace's next state change, after checking that its state allows it."""
    check_system_transition(state.state, target)
    return SystemStateChanged(
        originator_id=system_stream(state.namespace),
        originator_version=state.version + 1,
        timestamp=now,
        namespace=state.namespace,
        from_state=state.state,
        to_state=target,
        reason=reason,
        cause=cause,
        alarm=alarm,
    )
