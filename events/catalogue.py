"""Every event class Sheratan records, by topic."""

from __future__ import annotations

from events import Event, catalogue
from events.accounts import ACCOUNT_EVENTS
from events.audit import AUDIT_EVENTS
from events.chains import CHAIN_EVENTS
from events.decisions import DECISION_EVENTS
from events.jobs import JOB_EVENTS
from events.missions import MISSION_EVENTS, TASK_EVENTS
from events.policy import POLICY_EVENTS
from events.system import SYSTEM_EVENTS
from events.workers import WORKER_EVENTS

EVENT_TYPES: dict[str, type[Event]] = catalogue(
    *MISSION_EVENTS,
    *TASK_EVENTS,
    *JOB_EVENTS,
    *CHAIN_EVENTS,
    *WORKER_EVENTS,
    *DECISION_EVENTS,
    *POLICY_EVENTS,
    *AUDIT_EVENTS,
    *ACCOUNT_EVENTS,
    *SYSTEM_EVENTS,
)
