"""The system state as operators read it and change it: ``system state|transition|history``.

The CLI and (as it comes) the API call these; each returns plain data to render.
"""

from __future__ import annotations

from typing import Any

from events import Event
from projections.system import SystemState
from sheratan.dispatch.gating import held_back
from sheratan.dispatch.service import dispatch_lock
from sheratan.home import Home
from sheratan.views import JOBS, SYSTEM


def system_report(home: Home, namespace: str = "") -> dict[str, Any]:
    """The state, since when and why, its open alarms, and what dispatch does in it."""
    state = home.views.current(SYSTEM).of(namespace)
    jobs = home.views.current(JOBS)
    queued = sum(job.namespace == namespace for job in jobs.queued())
    return {
        **_state(state),
        "dispatch": held_back(state.state) or "dispatching normally",
        "queued": queued,
        "alarms": [
            {
                "rule": alarm.rule,
                "severity": alarm.severity,
                "value": alarm.value,
                "threshold": alarm.threshold,
                "detail": alarm.detail,
                "raised_at": alarm.raised_at,
            }
            for alarm in state.alarms.values()
        ],
    }


def transition(home: Home, target: str, reason: str, namespace: str = "") -> dict[str, Any]:
    """An operator's transition; refused with IllegalSystemTransitionError, recording nothing.

    Saved under the log's dispatch lock (``dispatch_lock``), between two dispatcher rounds:
    a round decides either wholly before the transition or wholly after it, never on a state
    that changed under it, so the log's order is the order the dispatcher saw (what replay
    checks)."""
    lock = dispatch_lock(home)
    try:
        lock.acquire()
        return _state(home.app.transition_system(target, reason, namespace=namespace))
    finally:
        lock.close()  # closing lets go (the lock file's descriptor, or the lock's session)


def history(home: Home, namespace: str = "") -> list[dict[str, Any]]:
    """Every transition and alarm of the namespace, oldest first."""
    return [_row(event) for event in home.app.system_history(namespace)]


def _state(state: SystemState) -> dict[str, Any]:
    return {
        "namespace": state.namespace,
        "state": state.state,
        "since": state.since,
        "reason": state.reason,
        "cause": state.cause,
        "version": state.version,
    }


def _row(event: Event) -> dict[str, Any]:
    fields = {
        name: getattr(event, name)
        for name in event.__struct_fields__
        if name not in ("originator_id", "originator_version", "timestamp", "namespace")
    }
    at = event.timestamp
    return {"version": event.originator_version, "at": at, "topic": event.TOPIC, **fields}
