"""Read models kept up to date from the ledger: fast event reading, persisted views, rebuild.

A view (projections.jobs.JobsView, projections.missions.MissionsView) is saved under
``<home>/projections/<name>.msgpack`` with the position it has folded; loading one folds only
the events after that position. ``rebuild`` folds from zero into a fresh view and swaps it in
atomically; ``as_of`` folds up to a position without saving (time travel, used by replay).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar, Union
from uuid import UUID

import msgspec

from events import Event
from events.catalogue import EVENT_TYPES
from events.decisions import DecisionMade
from events.system import SystemStateChanged
from projections.baselines import BaselinesView
from projections.decisions import OpenDecisionsView
from projections.jobs import JobState, JobsView
from projections.missions import MissionState, MissionsView, TaskState
from projections.priors import Prior, PriorsView
from projections.system import Alarm, Outcome, SystemView
from projections.workers import WorkerState, WorkersView
from sheratan.codec import EventCodec
from sheratan.store.files import write_durably
from sheratan.store.ledger import Ledger


class _Untyped(msgspec.Struct):
    pos: int
    stream: UUID
    ver: int
    topic: str
    data: msgspec.Raw


def _line_type(cls: type[Event]) -> Any:
    """A ledger line whose ``topic`` (the tag) selects ``cls`` as the type of ``data``."""
    return msgspec.defstruct(
        f"{cls.__name__}Line",
        [("pos", int), ("stream", UUID), ("ver", int), ("data", cls)],
        tag_field="topic",
        tag=cls.TOPIC,
        kw_only=True,
    )


class EventReader:
    """Decodes ledger lines to (position, event) in one msgspec pass per line.

    The line's ``topic`` is the tag of a union of line types, one per event class at
    VERSION 1, so ``data`` decodes straight into the event. Lines of newer class versions go
    through the codec's upcasters; a topic outside the catalogue is an error.
    """

    def __init__(self, event_types: dict[str, type[Event]] = EVENT_TYPES) -> None:
        self.codec = EventCodec(event_types)
        direct = tuple(_line_type(cls) for cls in event_types.values() if cls.VERSION == 1)
        self._direct = msgspec.json.Decoder(Union[direct]) if direct else None  # noqa: UP007
        self._untyped = msgspec.json.Decoder(_Untyped)

    def decode(self, raw: bytes) -> tuple[int, Event]:
        if self._direct is not None:
            try:
                line = self._direct.decode(raw)
            except msgspec.ValidationError:
                pass  # a versioned class (upcast below) or an unknown topic (an error below)
            else:
                event = line.data
                set_field = msgspec.structs.force_setattr
                set_field(event, "originator_id", line.stream)
                set_field(event, "originator_version", line.ver)
                return line.pos, event
        untyped = self._untyped.decode(raw)
        return untyped.pos, self.codec.decode(
            untyped.topic, bytes(untyped.data), untyped.stream, untyped.ver
        )

    def events(
        self,
        ledger: Ledger,
        first: int = 1,
        last: int | None = None,
        topics: frozenset[str] | None = None,
    ) -> Iterator[tuple[int, Event]]:
        """Every event from ``first`` to ``last`` (default: the end), in log order; only
        those of ``topics`` when given (the others are skipped undecoded: a follower that
        folds job events only need not decode every decision)."""
        stop = ledger.last_position() if last is None else last
        decode = self.decode
        if topics is None:
            for _, raw in ledger.lines(first, stop):
                yield decode(raw)
            return
        wanted = {f'"topic":"{topic}"'.encode() for topic in topics}
        for _, raw in ledger.lines(first, stop):
            if _topic_of(raw) in wanted:
                yield decode(raw)


def _topic_of(raw: bytes) -> bytes:
    """The ``"topic":"..."`` field of a ledger line, found without decoding it (the line's
    keys come in a fixed order: the topic follows the short pos, ts, stream and ver)."""
    start = raw.find(b'"topic":"')
    return raw[start : raw.find(b'"', start + 9) + 1]


V = TypeVar("V")


class _JobsSnapshot(msgspec.Struct):
    jobs: list[JobState]


class _MissionsSnapshot(msgspec.Struct):
    missions: list[MissionState]
    tasks: list[TaskState]


class _Saved(msgspec.Struct):
    """A saved view: the position it folded, that line's chain hash, and the view's state."""

    position: int
    head: str | None
    state: msgspec.Raw


def _jobs_to_snapshot(view: JobsView) -> bytes:
    return msgspec.msgpack.encode(_JobsSnapshot(list(view.jobs.values())))


def _jobs_from_snapshot(data: bytes) -> JobsView:
    snapshot = msgspec.msgpack.decode(data, type=_JobsSnapshot)
    return JobsView(0, {job.id: job for job in snapshot.jobs})


def _missions_to_snapshot(view: MissionsView) -> bytes:
    snapshot = _MissionsSnapshot(list(view.missions.values()), list(view.tasks.values()))
    return msgspec.msgpack.encode(snapshot)


def _missions_from_snapshot(data: bytes) -> MissionsView:
    snapshot = msgspec.msgpack.decode(data, type=_MissionsSnapshot)
    view = MissionsView()
    view.missions = {m.id: m for m in snapshot.missions}
    view.tasks = {t.id: t for t in snapshot.tasks}
    return view


class ViewKind(Generic[V]):
    """How one kind of view is made, saved and loaded."""

    def __init__(
        self,
        name: str,
        new: Callable[[], V],
        dump: Callable[[V], bytes],
        load: Callable[[bytes], V],
    ) -> None:
        self.name = name
        self.new = new
        self.dump = dump
        self.load = load


class _WorkersSnapshot(msgspec.Struct):
    workers: list[WorkerState]
    #: Required: a snapshot saved before the view folded recent records has none, fails to
    #: decode, and is folded afresh (its workers would otherwise load with empty records).
    attempts: dict[UUID, str]


def _workers_to_snapshot(view: WorkersView) -> bytes:
    return msgspec.msgpack.encode(_WorkersSnapshot(list(view.workers.values()), view.attempts))


def _workers_from_snapshot(data: bytes) -> WorkersView:
    view = WorkersView()
    snapshot = msgspec.msgpack.decode(data, type=_WorkersSnapshot)
    for worker in snapshot.workers:
        view.workers[worker.id] = worker
        view.by_stream[worker.stream] = worker.id
    view.attempts = dict(snapshot.attempts)
    return view


class _PriorRow(msgspec.Struct, array_like=True):
    intent: str
    key: str
    prior: Prior
    stream: UUID
    version: int


def _priors_to_snapshot(view: PriorsView) -> bytes:
    rows = [
        _PriorRow(intent, key, prior, *view.streams[(intent, key)])
        for (intent, key), prior in view.priors.items()
    ]
    return msgspec.msgpack.encode(rows)


def _priors_from_snapshot(data: bytes) -> PriorsView:
    view = PriorsView()
    for row in msgspec.msgpack.decode(data, type=list[_PriorRow]):
        view.priors[(row.intent, row.key)] = row.prior
        view.streams[(row.intent, row.key)] = (row.stream, row.version)
        view.totals[row.intent] = view.totals.get(row.intent, 0) + row.prior.visits
    return view


class _BaselinesSnapshot(msgspec.Struct):
    window: int
    intents: dict[str, tuple[list[float], list[float]]]
    actions: list[tuple[str, str, list[float], list[float]]]
    streams: dict[str, tuple[UUID, int]]


def baselines_kind(window: int) -> ViewKind[BaselinesView]:
    """Baselines folded with a given window size (a different size is a different view)."""

    def dump(view: BaselinesView) -> bytes:
        snapshot = _BaselinesSnapshot(
            window=view.window,
            intents={k: (list(w.latency_ms), list(w.cost)) for k, w in view.intents.items()},
            actions=[
                (i, a, list(w.latency_ms), list(w.cost)) for (i, a), w in view.actions.items()
            ],
            streams=dict(view.streams),
        )
        return msgspec.msgpack.encode(snapshot)

    def load(data: bytes) -> BaselinesView:
        snapshot = msgspec.msgpack.decode(data, type=_BaselinesSnapshot)
        view = BaselinesView(snapshot.window)
        for intent, (latencies, costs) in snapshot.intents.items():
            for latency, cost in zip(latencies, costs, strict=True):
                view.window_for(view.intents, intent).add(latency, cost)
        for intent, action, latencies, costs in snapshot.actions:
            for latency, cost in zip(latencies, costs, strict=True):
                view.window_for(view.actions, (intent, action)).add(latency, cost)
        view.streams = dict(snapshot.streams)
        return view

    return ViewKind(f"baselines-w{window}", lambda: BaselinesView(window), dump, load)


class _DecisionsSnapshot(msgspec.Struct):
    open: list[DecisionMade]
    to_settle: list[UUID]


def _decisions_to_snapshot(view: OpenDecisionsView) -> bytes:
    return msgspec.msgpack.encode(
        _DecisionsSnapshot(list(view.open.values()), list(view.to_settle))
    )


def _decisions_from_snapshot(data: bytes) -> OpenDecisionsView:
    snapshot = msgspec.msgpack.decode(data, type=_DecisionsSnapshot)
    view = OpenDecisionsView()
    for made in snapshot.open:
        view.open[made.originator_id] = made
        if made.job_id is not None:
            view.by_job.setdefault(made.job_id, []).append(made.originator_id)
    view.to_settle = dict.fromkeys(snapshot.to_settle)
    return view


class _NamespaceRow(msgspec.Struct):
    namespace: str
    state: str
    since: datetime | None
    reason: str
    cause: str
    version: int
    ended: int
    healing: UUID | None
    alarms: list[Alarm]
    recent: list[SystemStateChanged]
    outcomes: list[Outcome]


class _SystemSnapshot(msgspec.Struct):
    namespaces: list[_NamespaceRow]
    worker_namespace: dict[str, str]
    in_flight: dict[UUID, str]


def _system_to_snapshot(view: SystemView) -> bytes:
    rows = [
        _NamespaceRow(
            s.namespace,
            s.state,
            s.since,
            s.reason,
            s.cause,
            s.version,
            s.ended,
            s.healing,
            list(s.alarms.values()),
            list(s.recent),
            list(s.outcomes),
        )
        for s in view.namespaces.values()
    ]
    return msgspec.msgpack.encode(_SystemSnapshot(rows, view.worker_namespace, view.in_flight))


def _system_from_snapshot(data: bytes) -> SystemView:
    snapshot = msgspec.msgpack.decode(data, type=_SystemSnapshot)
    view = SystemView()
    for row in snapshot.namespaces:
        state = view.of(row.namespace)
        state.state = row.state  # type: ignore[assignment]
        state.since, state.reason, state.cause = row.since, row.reason, row.cause
        state.version, state.ended, state.healing = row.version, row.ended, row.healing
        state.alarms = {alarm.rule: alarm for alarm in row.alarms}
        state.recent.extend(row.recent)
        state.outcomes.extend(row.outcomes)
    view.worker_namespace = snapshot.worker_namespace
    view.in_flight = snapshot.in_flight
    return view


JOBS: ViewKind[JobsView] = ViewKind("jobs", JobsView, _jobs_to_snapshot, _jobs_from_snapshot)
MISSIONS: ViewKind[MissionsView] = ViewKind(
    "missions", MissionsView, _missions_to_snapshot, _missions_from_snapshot
)
WORKERS: ViewKind[WorkersView] = ViewKind(
    "workers", WorkersView, _workers_to_snapshot, _workers_from_snapshot
)
PRIORS: ViewKind[PriorsView] = ViewKind(
    "priors", PriorsView, _priors_to_snapshot, _priors_from_snapshot
)
DECISIONS: ViewKind[OpenDecisionsView] = ViewKind(
    "decisions", OpenDecisionsView, _decisions_to_snapshot, _decisions_from_snapshot
)
SYSTEM: ViewKind[SystemView] = ViewKind(
    "system", SystemView, _system_to_snapshot, _system_from_snapshot
)
VIEW_KINDS: dict[str, ViewKind[Any]] = {
    kind.name: kind
    for kind in (JOBS, MISSIONS, WORKERS, PRIORS, DECISIONS, baselines_kind(200), SYSTEM)
}


class Views:
    """The persisted views of one home."""

    def __init__(self, home: Path, ledger: Ledger, reader: EventReader | None = None) -> None:
        self.dir = home / "projections"
        self.ledger = ledger
        self.reader = reader or EventReader()

    def current(self, kind: ViewKind[V]) -> V:
        """The view folded up to the end of the log (resuming from its saved position).

        A saved view whose position's chain hash differs from the log's was folded from
        another history (a restored or replaced log): it is dropped and folded afresh.
        """
        view = self._load(kind)
        start = view.position  # type: ignore[attr-defined]
        last = self.ledger.last_position()
        if last > start:
            self._fold(view, start + 1, last)
            self._save(kind, view)
        return view

    def rebuild(self, kind: ViewKind[V], progress: Callable[[int], None] | None = None) -> V:
        """Fold the whole log into a fresh view, then swap it in atomically."""
        view = kind.new()
        self._fold(view, 1, self.ledger.last_position(), progress)
        self._save(kind, view)
        return view

    def as_of(
        self, kind: ViewKind[V], position: int, progress: Callable[[int], None] | None = None
    ) -> V:
        """The view as it was right after ``position`` (not saved)."""
        view = kind.new()
        self._fold(view, 1, min(position, self.ledger.last_position()), progress)
        return view

    def _fold(
        self, view: Any, first: int, last: int, progress: Callable[[int], None] | None = None
    ) -> None:
        apply = view.apply
        # A fold makes no reference cycles, but it allocates millions of objects while many
        # live ones exist: the cyclic collector's passes would cost a third of the time.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for count, (position, event) in enumerate(
                self.reader.events(self.ledger, first, last), 1
            ):
                apply(position, event)
                if progress is not None and count % 100_000 == 0:
                    progress(count)
        finally:
            if collecting:
                gc.enable()
        view.position = max(view.position, last)

    def _load(self, kind: ViewKind[V]) -> V:
        path = self.dir / f"{kind.name}.msgpack"
        try:
            saved = msgspec.msgpack.decode(path.read_bytes(), type=_Saved)
            view = kind.load(bytes(saved.state))
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return kind.new()
        if saved.position and self.ledger.hash_at(saved.position) != saved.head:
            return kind.new()
        view.position = saved.position  # type: ignore[attr-defined]
        return view

    def save(self, kind: ViewKind[V], view: V) -> None:
        """Persist a view the caller folded further (the live engine's, after a run)."""
        self._save(kind, view)

    def _save(self, kind: ViewKind[V], view: V) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        position: int = view.position  # type: ignore[attr-defined]
        saved = _Saved(position, self.ledger.hash_at(position), msgspec.Raw(kind.dump(view)))
        write_durably(self.dir / f"{kind.name}.msgpack", msgspec.msgpack.encode(saved))
