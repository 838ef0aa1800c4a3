"""The system's state per namespace, its open alarms, and what the anomaly rules read.

Folded from the system stream (``system.*`` events) and from attempt ends: each namespace
keeps its last ``OUTCOME_WINDOW`` attempt outcomes (completed, failed, timed out, with the
latency), so the dispatcher's rules measure a failure rate without scanning the log. An
attempt's namespace is its worker's (a simulated worker only ever runs simulated jobs), so
the view keeps only the workers' namespaces and the attempts in flight, never every job.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from events import Event
from events.jobs import JobCancelled, JobCompleted, JobDispatched, JobFailed, JobTimedOut
from events.system import (
    AlarmCleared,
    AlarmRaised,
    SelfHealResolved,
    SelfHealTaken,
    SystemStateChanged,
    SystemStateName,
)
from events.workers import WorkerRegistered

#: Attempt outcomes kept per namespace: the most any failure-rate rule may look back over.
OUTCOME_WINDOW = 1000
#: Transitions kept per namespace in the fold (``system history`` reads the whole stream).
RECENT_TRANSITIONS = 20

OutcomeCode = Literal["completed", "failed", "timed_out"]

_ENDS: dict[type[Event], OutcomeCode | None] = {
    JobCompleted: "completed",
    JobFailed: "failed",
    JobTimedOut: "timed_out",
    JobCancelled: None,  # ends an attempt without saying how it went
}


@dataclass(frozen=True)
class Outcome:
    """One ended attempt, as the rules read it."""

    code: OutcomeCode
    latency_ms: float | None


@dataclass(frozen=True)
class Alarm:
    rule: str
    severity: str
    value: float
    threshold: float
    detail: str
    raised_at: datetime


@dataclass
class SystemState:
    """One namespace's system state. ``version`` is its stream's (0: nothing recorded yet,
    which is OPERATIONAL)."""

    namespace: str = ""
    state: SystemStateName = "OPERATIONAL"
    since: datetime | None = None
    reason: str = ""
    cause: str = ""
    version: int = 0
    alarms: dict[str, Alarm] = field(default_factory=dict)
    recent: deque[SystemStateChanged] = field(
        default_factory=lambda: deque(maxlen=RECENT_TRANSITIONS)
    )
    outcomes: deque[Outcome] = field(default_factory=lambda: deque(maxlen=OUTCOME_WINDOW))
    #: Attempt outcomes ever folded (the rules' cursor: which outcomes are new since a round).
    ended: int = 0
    #: The open heal of a rule's move away from OPERATIONAL (resolved once back).
    healing: UUID | None = None


def apply_system(state: SystemState, event: Event) -> SystemState:
    """Fold one system-stream event into its namespace's state (in place; returns it)."""
    state.version = event.originator_version
    if isinstance(event, SystemStateChanged):
        state.state = event.to_state
        state.since = event.timestamp
        state.reason = event.reason
        state.cause = event.cause
        state.recent.append(event)
    elif isinstance(event, AlarmRaised):
        state.alarms[event.rule] = Alarm(
            event.rule, event.severity, event.value, event.threshold, event.detail, event.timestamp
        )
    elif isinstance(event, AlarmCleared):
        state.alarms.pop(event.rule, None)
    elif isinstance(event, SelfHealTaken):
        state.healing = event.heal_id
    elif isinstance(event, SelfHealResolved):
        state.healing = None
    return state


def on_system_stream(event: Event) -> bool:
    """Whether an event of the system's kinds is on a system stream (a recovery decision's
    heal has a stream of its own, and names its decision)."""
    if isinstance(event, SelfHealTaken | SelfHealResolved):
        return event.decision_id is None
    return True


def project_system(state: SystemState | None, events: Any) -> SystemState | None:
    """A projector function for eventsourcing's Repository.get (one namespace's stream;
    None when it holds nothing, which the repository reports as not found)."""
    for event in events:
        state = apply_system(state or SystemState(event.namespace), event)
    return state


_SYSTEM: frozenset[type[Event]] = frozenset(
    {SystemStateChanged, AlarmRaised, AlarmCleared, SelfHealTaken, SelfHealResolved}
)


class SystemView:
    """Every namespace's system state, and the attempts in flight (to know their namespace)."""

    FOLDS: ClassVar[frozenset[type[Event]]] = frozenset(
        {*_SYSTEM, WorkerRegistered, JobDispatched, *_ENDS}
    )

    def __init__(self) -> None:
        self.position = 0
        self.namespaces: dict[str, SystemState] = {}
        #: worker id -> its namespace; job id -> the namespace of its open attempt.
        self.worker_namespace: dict[str, str] = {}
        self.in_flight: dict[UUID, str] = {}

    def of(self, namespace: str = "") -> SystemState:
        state = self.namespaces.get(namespace)
        if state is None:
            state = self.namespaces[namespace] = SystemState(namespace)
        return state

    def apply(self, position: int, event: Event) -> None:
        kind = type(event)
        if kind is JobDispatched:
            worker: str = event.worker  # type: ignore[attr-defined]
            self.in_flight[event.originator_id] = self.worker_namespace.get(worker, "")
        elif kind in _ENDS:
            namespace = self.in_flight.pop(event.originator_id, None)
            code = _ENDS[kind]
            if namespace is not None and code is not None:
                state = self.of(namespace)
                metrics = getattr(event, "metrics", None)
                state.outcomes.append(Outcome(code, metrics.latency_ms if metrics else None))
                state.ended += 1
        elif kind is WorkerRegistered:
            self.worker_namespace[event.worker_id] = event.namespace  # type: ignore[attr-defined]
        elif kind in _SYSTEM and on_system_stream(event):
            apply_system(self.of(event.namespace), event)  # type: ignore[attr-defined]
        self.position = position

    def summary(self) -> dict[str, Any]:
        """Each namespace's state and how many alarms it has open (``rebuild`` prints it)."""
        return {
            "states": {ns or "real": s.state for ns, s in sorted(self.namespaces.items())},
            "alarms": sum(len(s.alarms) for s in self.namespaces.values()),
        }
