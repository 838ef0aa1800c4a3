"""Missions and their tasks: the work an operator asks for, before it becomes jobs."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from events import Event


class MissionCreated(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "mission.created"

    title: str
    description: str = ""


class MissionActivated(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "mission.activated"


class MissionCompleted(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "mission.completed"


class MissionCancelled(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "mission.cancelled"

    reason: str = ""


class TaskCreated(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "task.created"

    mission_id: UUID
    title: str
    description: str = ""


MISSION_EVENTS = (MissionCreated, MissionActivated, MissionCompleted, MissionCancelled)
TASK_EVENTS = (TaskCreated,)
