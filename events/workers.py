"""Workers: who can execute which kinds of job, over which transport, and their health."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal, get_args

from events import Event

#: local and simulated workers run inside the dispatching process; a ``process`` worker is a
#: ``worker run`` daemon of its own; a ``webrelay`` worker is reached through files.
Transport = Literal["local", "simulated", "process", "webrelay"]
TRANSPORTS: tuple[str, ...] = get_args(Transport)


class WorkerRegistered(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "worker.registered"

    worker_id: str
    kinds: tuple[str, ...]
    transport: Transport
    cost_hint: float = 0.0
    profile: dict[str, Any] | None = None
    #: "" is a real worker; a simulated one carries its simulation's namespace and is only
    #: ever a candidate for jobs of that namespace.
    namespace: str = ""


class WorkerHeartbeat(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "worker.heartbeat"


class WorkerQuarantined(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "worker.quarantined"

    reason: str
    until: datetime | None = None  # None: until released by hand


class WorkerReleased(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "worker.released"


WORKER_EVENTS = (WorkerRegistered, WorkerHeartbeat, WorkerQuarantined, WorkerReleased)
