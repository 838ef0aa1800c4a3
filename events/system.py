"""The system's own stream: its state (OPERATIONAL, DEGRADED, ...) and the alarms that move it.

One stream per namespace (``sheratan.streams.system_stream``): real work has one, a
simulation another, so a simulated failure burst never gates real work. Transitions and
alarms share the stream, so an operator's transition and a dispatcher's alarm race on its
version and the loser re-reads: the state machine is always checked on the current state.
"""

from __future__ import annotations

from typing import ClassVar, Literal, get_args
from uuid import UUID

from events import Event

SystemStateName = Literal["OPERATIONAL", "DEGRADED", "REFLECTIVE", "RECOVERY", "PAUSED"]
SYSTEM_STATES: tuple[str, ...] = get_args(SystemStateName)
#: What an alarm asks for when it is raised: fewer leases and less exploration, or recovery.
Severity = Literal["degrade", "recover"]


class SystemStateChanged(Event, frozen=True, kw_only=True):
    """The system moved from one state to another; ``cause`` is ``operator`` or
    ``rule:<name>`` (an anomaly rule), ``alarm`` the rule whose alarm moved it, if any."""

    TOPIC: ClassVar[str] = "system.state_changed"

    namespace: str = ""
    from_state: SystemStateName
    to_state: SystemStateName
    reason: str
    cause: str
    alarm: str | None = None


class AlarmRaised(Event, frozen=True, kw_only=True):
    """An anomaly rule crossed its threshold: what it measured, against what."""

    TOPIC: ClassVar[str] = "system.alarm_raised"

    namespace: str = ""
    rule: str
    severity: Severity
    value: float
    threshold: float
    detail: str


class AlarmCleared(Event, frozen=True, kw_only=True):
    """An anomaly rule's measure fell back below its clearing threshold."""

    TOPIC: ClassVar[str] = "system.alarm_cleared"

    namespace: str = ""
    rule: str
    value: float
    threshold: float
    detail: str


#: How an automatic recovery ended: its next attempt completed (``healed``) or failed, the
#: job ended before it ran (``not_attempted``), or an operator moved the state instead.
HealOutcome = Literal["healed", "failed", "not_attempted", "overridden"]


class SelfHealTaken(Event, frozen=True, kw_only=True):
    """An automatic recovery: what triggered it, what was done, with what confidence.

    ``heal_id`` joins it to its ``self_heal.resolved``. A recovery decision's heal (a retry, a
    fallback, a quarantine on evidence) is its own stream and names the decision and the job;
    a system state's heal (OPERATIONAL to DEGRADED or RECOVERY by an alarm) is on the system
    stream and names neither. ``confidence`` is the probability the decision gave the chosen
    action (1.0 for a rule's move)."""

    TOPIC: ClassVar[str] = "self_heal.taken"

    namespace: str = ""
    heal_id: UUID
    trigger: str
    action: str
    confidence: float
    detail: str
    decision_id: UUID | None = None
    job_id: UUID | None = None


class SelfHealResolved(Event, frozen=True, kw_only=True):
    """How an automatic recovery ended, once known."""

    TOPIC: ClassVar[str] = "self_heal.resolved"

    namespace: str = ""
    heal_id: UUID
    outcome: HealOutcome
    detail: str
    decision_id: UUID | None = None


SYSTEM_EVENTS = (
    SystemStateChanged,
    AlarmRaised,
    AlarmCleared,
    SelfHealTaken,
    SelfHealResolved,
)
