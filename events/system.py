"""The system's own stream: its state (OPERATIONAL, DEGRADED, ...) and the alarms that move it.

One stream per namespace (``sheratan.streams.system_stream``): real work has one, a
simulation another, so a simulated failure burst never gates real work. Transitions and
alarms share the stream, so an operator's transition and a dispatcher's alarm race on its
version and the loser re-reads: the state machine is always checked on the current state.
"""

from __future__ import annotations

from typing import ClassVar, Literal, get_args

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


SYSTEM_EVENTS = (SystemStateChanged, AlarmRaised, AlarmCleared)
