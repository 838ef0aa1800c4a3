"""The system state over HTTP: the same services as ``sheratan system state|transition|
history``. ``simulation=true`` reads or moves the simulations' own state, not real work's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from events.system import SystemStateName
from projections.system import Alarm
from sheratan import system_report
from sheratan.api.routing import Rule, home_of, problems
from sheratan.dispatch.service import SIMULATION
from sheratan.inputs import MAX_DESCRIPTION_CHARS

Simulation = Annotated[
    bool, Parameter(description="The simulations' own system state, not real work's.")
]


class Transition(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A transition an operator asks for (``sheratan system transition STATE --reason …``)."""

    state: SystemStateName
    reason: Annotated[str, Rule(min_length=1, max_length=MAX_DESCRIPTION_CHARS, pattern=r"\S")]


class SystemStateOut(msgspec.Struct, kw_only=True):
    """A namespace's state: since when, why, and who or what caused it."""

    namespace: str
    state: SystemStateName
    since: datetime | None
    reason: str
    cause: str
    version: int


class SystemReport(SystemStateOut, kw_only=True):
    """``sheratan system state --json``: the state, what dispatch does in it, the queued
    jobs of the namespace and its open alarms."""

    dispatch: str
    queued: int
    alarms: list[Alarm]


def _namespace(simulation: bool) -> str:
    return SIMULATION if simulation else ""


TAGS = ["system"]


class SystemController(Controller):
    path = "/api/system"
    tags = TAGS

    @get("/", sync_to_thread=True, responses=problems(400))
    def system_state(self, state: State, simulation: Simulation = False) -> SystemReport:
        """The system state, what dispatch does in it, and its open alarms."""
        report = system_report.system_report(home_of(state), _namespace(simulation))
        return msgspec.convert(report, SystemReport)

    @post("/transitions", sync_to_thread=True, responses=problems(400, 409, 429))
    def transition(
        self, state: State, data: Transition, simulation: Simulation = False
    ) -> SystemStateOut:
        """Move the system to a state (201); an illegal transition is 409 and records
        nothing. Saved between two dispatcher rounds (under the home's dispatch lock)."""
        moved = system_report.transition(
            home_of(state), data.state, data.reason, _namespace(simulation)
        )
        return msgspec.convert(moved, SystemStateOut)

    @get("/history", sync_to_thread=True, responses=problems(400))
    def system_history(self, state: State, simulation: Simulation = False) -> list[dict[str, Any]]:
        """Every transition, alarm and system self-heal of the namespace, oldest first."""
        return system_report.history(home_of(state), _namespace(simulation))


SYSTEM_ROUTES = [SystemController]
