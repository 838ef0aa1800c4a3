"""Missions and tasks over HTTP: the same services and views as ``sheratan mission|task``."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State

from projections.missions import MissionState, TaskState
from sheratan.api.paging import Cursor, Limit, page
from sheratan.api.routing import Rule, home_of, problems
from sheratan.inputs import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS
from sheratan.views import MISSIONS

TAGS = ["missions"]


#: One line a person reads, not blank: documented here, checked by the service.
Title = Annotated[str, Rule(min_length=1, max_length=MAX_TITLE_CHARS, pattern=r"\S")]
Description = Annotated[str, Rule(max_length=MAX_DESCRIPTION_CHARS)]


class NewMission(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A mission to create (``sheratan mission create TITLE --description …``)."""

    title: Title
    description: Description = ""


#: A task's body has the mission's fields (``sheratan task create MISSION TITLE …``).
NewTask = NewMission


class MissionPage(msgspec.Struct):
    items: list[MissionState]
    next_cursor: str | None


class MissionWithTasks(MissionState, frozen=True, kw_only=True):
    """A mission and its tasks, as ``sheratan mission show --json`` prints it."""

    tasks: list[TaskState]


class MissionsController(Controller):
    """Missions and their tasks: one controller per resource, as Litestar means routes to
    be grouped (a sync handler added on its own beside another method of its path was
    wrapped twice by Litestar 2.25, and its ``Response`` came back as a coroutine)."""

    path = "/api"
    tags = TAGS

    @post("/missions", sync_to_thread=True, responses=problems(400, 429))
    def create_mission(self, state: State, data: NewMission) -> MissionState:
        """Create a mission (201 with the mission, its ``id`` included)."""
        app = home_of(state).app
        return app.get_mission(app.create_mission(data.title, data.description))

    @get("/missions", sync_to_thread=True, responses=problems(400))
    def list_missions(self, state: State, limit: Limit = 100, cursor: Cursor = None) -> MissionPage:
        """Missions, oldest first, a page at a time."""
        missions = home_of(state).views.current(MISSIONS).missions.values()
        items, after = page(missions, lambda m: (m.created_at, m.id), cursor, limit)
        return MissionPage(items, after)

    @get("/missions/{mission_id:uuid}", sync_to_thread=True, responses=problems(404))
    def show_mission(self, state: State, mission_id: UUID) -> MissionWithTasks:
        """One mission with its tasks."""
        home = home_of(state)
        mission = home.app.get_mission(mission_id)
        tasks = [
            t for t in home.views.current(MISSIONS).tasks.values() if t.mission_id == mission_id
        ]
        tasks.sort(key=lambda t: t.created_at)
        return MissionWithTasks(**msgspec.structs.asdict(mission), tasks=tasks)

    @post(
        "/missions/{mission_id:uuid}/tasks", sync_to_thread=True, responses=problems(400, 404, 429)
    )
    def create_task(self, state: State, mission_id: UUID, data: NewTask) -> TaskState:
        """Create a task in a mission (201 with the task)."""
        app = home_of(state).app
        return app.get_task(app.create_task(mission_id, data.title, data.description))

    @get("/tasks/{task_id:uuid}", sync_to_thread=True, responses=problems(404))
    def show_task(self, state: State, task_id: UUID) -> TaskState:
        """One task."""
        return home_of(state).app.get_task(task_id)


MISSION_ROUTES = [MissionsController]
