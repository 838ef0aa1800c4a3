"""Missions and tasks over HTTP: the same services and views as ``sheratan mission|task``."""

from __future__ import annotations

from uuid import UUID

import msgspec
from litestar import get, post
from litestar.datastructures import State

from projections.missions import MissionState, TaskState
from sheratan.api.app import problems
from sheratan.api.paging import Cursor, Limit, page
from sheratan.home import Home
from sheratan.views import MISSIONS

TAGS = ["missions"]


class NewMission(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A mission to create (``sheratan mission create TITLE --description …``)."""

    title: str
    description: str = ""


#: A task's body has the mission's fields (``sheratan task create MISSION TITLE …``).
NewTask = NewMission


class MissionPage(msgspec.Struct):
    items: list[MissionState]
    next_cursor: str | None


class MissionWithTasks(MissionState, frozen=True, kw_only=True):
    """A mission and its tasks, as ``sheratan mission show --json`` prints it."""

    tasks: list[TaskState]


def _home(state: State) -> Home:
    home: Home = state.home
    return home


@post(
    "/api/missions",
    operation_id="ApiMissionsCreateMission",  # registered twice by Litestar (see api/jobs.py)
    summary="CreateMission",
    sync_to_thread=True,
    tags=TAGS,
    responses=problems(400, 429),
)
def create_mission(state: State, data: NewMission) -> MissionState:
    """Create a mission (201 with the mission, its ``id`` included)."""
    app = _home(state).app
    return app.get_mission(app.create_mission(data.title, data.description))


@get("/api/missions", sync_to_thread=True, tags=TAGS, responses=problems(400))
def list_missions(state: State, limit: Limit = 100, cursor: Cursor = None) -> MissionPage:
    """Missions, oldest first, a page at a time."""
    missions = _home(state).views.current(MISSIONS).missions.values()
    items, after = page(missions, lambda m: (m.created_at, m.id), cursor, limit)
    return MissionPage(items, after)


@get("/api/missions/{mission_id:uuid}", sync_to_thread=True, tags=TAGS, responses=problems(404))
def show_mission(state: State, mission_id: UUID) -> MissionWithTasks:
    """One mission with its tasks."""
    home = _home(state)
    mission = home.app.get_mission(mission_id)
    tasks = [t for t in home.views.current(MISSIONS).tasks.values() if t.mission_id == mission_id]
    tasks.sort(key=lambda t: t.created_at)
    return MissionWithTasks(**msgspec.structs.asdict(mission), tasks=tasks)


@post(
    "/api/missions/{mission_id:uuid}/tasks",
    sync_to_thread=True,
    tags=TAGS,
    responses=problems(400, 404, 429),
)
def create_task(state: State, mission_id: UUID, data: NewTask) -> TaskState:
    """Create a task in a mission (201 with the task)."""
    app = _home(state).app
    return app.get_task(app.create_task(mission_id, data.title, data.description))


@get("/api/tasks/{task_id:uuid}", sync_to_thread=True, tags=TAGS, responses=problems(404))
def show_task(state: State, task_id: UUID) -> TaskState:
    """One task."""
    return _home(state).app.get_task(task_id)


MISSION_ROUTES = [create_mission, list_missions, show_mission, create_task, show_task]
