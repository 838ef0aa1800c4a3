"""Missions and tasks as their events made them, and a view of all of them."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

import msgspec

from events import Event
from events.missions import (
    MissionActivated,
    MissionCancelled,
    MissionCompleted,
    MissionCreated,
    TaskCreated,
)

MissionStatus = Literal["created", "active", "completed", "cancelled"]


class MissionState(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    title: str
    description: str
    status: MissionStatus
    created_at: datetime
    updated_at: datetime


class TaskState(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    mission_id: UUID
    title: str
    description: str
    created_at: datetime


_MISSION_STATUS: dict[type[Event], MissionStatus] = {
    MissionActivated: "active",
    MissionCompleted: "completed",
    MissionCancelled: "cancelled",
}


def apply_mission(state: MissionState | None, event: Event) -> MissionState:
    if isinstance(event, MissionCreated):
        return MissionState(
            id=event.originator_id,
            version=event.originator_version,
            title=event.title,
            description=event.description,
            status="created",
            created_at=event.timestamp,
            updated_at=event.timestamp,
        )
    if state is None or type(event) not in _MISSION_STATUS:
        msg = f"{type(event).__name__} cannot apply to mission {event.originator_id}"
        raise ValueError(msg)
    return msgspec.structs.replace(
        state,
        version=event.originator_version,
        status=_MISSION_STATUS[type(event)],
        updated_at=event.timestamp,
    )


def apply_task(state: TaskState | None, event: Event) -> TaskState:
    if not isinstance(event, TaskCreated) or state is not None:
        msg = f"{type(event).__name__} cannot apply to task {event.originator_id}"
        raise ValueError(msg)
    return TaskState(
        id=event.originator_id,
        version=event.originator_version,
        mission_id=event.mission_id,
        title=event.title,
        description=event.description,
        created_at=event.timestamp,
    )


def project_mission(state: MissionState | None, events: object) -> MissionState | None:
    for event in events:  # type: ignore[attr-defined]
        state = apply_mission(state, event)
    return state


def project_task(state: TaskState | None, events: object) -> TaskState | None:
    for event in events:  # type: ignore[attr-defined]
        state = apply_task(state, event)
    return state


class MissionsView:
    """All missions and tasks, with the position folded so far."""

    #: The event classes this view folds (others only advance its position).
    FOLDS: ClassVar[frozenset[type[Event]]] = frozenset(
        {MissionCreated, MissionActivated, MissionCompleted, MissionCancelled, TaskCreated}
    )

    def __init__(self) -> None:
        self.position = 0
        self.missions: dict[UUID, MissionState] = {}
        self.tasks: dict[UUID, TaskState] = {}

    def apply(self, position: int, event: Event) -> None:
        if isinstance(event, TaskCreated):
            self.tasks[event.originator_id] = apply_task(None, event)
        elif type(event) in _MISSION_EVENT_SET:
            mission_id = event.originator_id
            self.missions[mission_id] = apply_mission(self.missions.get(mission_id), event)
        self.position = position

    def summary(self) -> dict[str, int]:
        return {"missions": len(self.missions), "tasks": len(self.tasks)}


_MISSION_EVENT_SET = frozenset({MissionCreated, *_MISSION_STATUS})
