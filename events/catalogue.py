"""Every event class Sheratan records, by topic."""

from __future__ import annotations

from events import Event, catalogue
from events.jobs import JOB_EVENTS
from events.missions import MISSION_EVENTS, TASK_EVENTS

EVENT_TYPES: dict[str, type[Event]] = catalogue(*MISSION_EVENTS, *TASK_EVENTS, *JOB_EVENTS)
