"""Read models kept up to date from the ledger: fast event reading, persisted views, rebuild.

A view (projections.jobs.JobsView, projections.missions.MissionsView) is saved under
``<home>/projections/<name>.msgpack`` with the position it has folded; loading one folds only
the events after that position. ``rebuild`` folds from zero into a fresh view and swaps it in
atomically; ``as_of`` folds up to a position without saving it (time travel, used by
replay). The small views time travel shows also keep a bounded history of snapshots along the
log, and ``as_of`` resumes from the nearest one (``Views``).
"""

from __future__ import annotations

import gc
import itertools
import re
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar, Union, get_args
from uuid import UUID

import msgspec

from events import Event
from events.catalogue import EVENT_TYPES
from events.decisions import DecisionMade
from events.system import SystemStateChanged
from projections.accounts import Account, AccountsView, Hold
from projections.baselines import BaselinesView
from projections.chains import ChainState, ChainsView
from projections.decisions import OpenDecisionsView
from projections.jobs import JobState, JobStatusView, JobsView, Status
from projections.missions import MissionState, MissionsView, TaskState
from projections.priors import Prior, PriorsView
from projections.queue import QueueView
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
        #: Every topic this reader decodes: a filter that keeps them all filters nothing.
        self.topics = frozenset(event_types)
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


#: Job statuses as small numbers in a snapshot.
_STATUSES: tuple[Status, ...] = get_args(Status)
_STATUS_NUMBER = {status: number for number, status in enumerate(_STATUSES)}


class _StatusesSnapshot(msgspec.Struct):
    """Each job's id as 16 bytes and its status as one byte, in two blobs (17 bytes a job)."""

    ids: bytes
    statuses: bytes


def _statuses_to_snapshot(view: JobStatusView) -> bytes:
    ids = b"".join([job.to_bytes(16) for job in view.statuses])
    statuses = bytes([_STATUS_NUMBER[status] for status in view.statuses.values()])
    return msgspec.msgpack.encode(_StatusesSnapshot(ids, statuses))


def _statuses_from_snapshot(data: bytes) -> JobStatusView:
    snapshot = msgspec.msgpack.decode(data, type=_StatusesSnapshot)
    blob, number = snapshot.ids, int.from_bytes
    ids = [number(blob[i : i + 16]) for i in range(0, len(blob), 16)]
    statuses = [_STATUSES[n] for n in snapshot.statuses]
    return JobStatusView(0, dict(zip(ids, statuses, strict=True)))


class ViewKind(Generic[V]):
    """How one kind of view is made, saved and loaded."""

    def __init__(
        self,
        name: str,
        new: Callable[[], V],
        dump: Callable[[V], bytes],
        load: Callable[[bytes], V],
        *,
        history: bool = False,
    ) -> None:
        self.name = name
        self.new = new
        self.dump = dump
        self.load = load
        #: Keep snapshots along the log (``Views.as_of`` resumes from them): for small views
        #: that time travel asks for, not for the full jobs view (tens of MB at 1M events).
        self.history = history


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
    view.restore_attempts(snapshot.attempts)
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

    return ViewKind(f"baselines-w{window}", lambda: BaselinesView(window), dump, load, history=True)


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


class _ChainsSnapshot(msgspec.Struct):
    chains: dict[UUID, ChainState]


def _chains_to_snapshot(view: ChainsView) -> bytes:
    return msgspec.msgpack.encode(_ChainsSnapshot(view.chains))


def _chains_from_snapshot(data: bytes) -> ChainsView:
    view = ChainsView()
    view.chains = msgspec.msgpack.decode(data, type=_ChainsSnapshot).chains
    view.chain_of = {job: chain_id for chain_id, state in view.chains.items() for job in state.jobs}
    return view


class _QueueSnapshot(msgspec.Struct):
    #: (job id as 16 bytes, status, sources) of every open job.
    open: list[tuple[bytes, str, tuple[str, ...]]]
    recent: dict[str, list[datetime]]


def _queue_to_snapshot(view: QueueView) -> bytes:
    snapshot = _QueueSnapshot(
        [
            (key.to_bytes(16, "big"), status, sources)
            for key, (status, sources) in view.open.items()
        ],
        {source: list(times) for source, times in view.recent.items()},
    )
    return msgspec.msgpack.encode(snapshot)


def _queue_from_snapshot(data: bytes) -> QueueView:
    snapshot = msgspec.msgpack.decode(data, type=_QueueSnapshot)
    view = QueueView()
    for key, status, sources in snapshot.open:
        view.restore(int.from_bytes(key, "big"), status, sources)  # type: ignore[arg-type]
    view.recent = {source: deque(times) for source, times in snapshot.recent.items()}
    return view


class _AccountsSnapshot(msgspec.Struct):
    accounts: list[Account]
    holds: list[Hold]


def _accounts_to_snapshot(view: AccountsView) -> bytes:
    return msgspec.msgpack.encode(
        _AccountsSnapshot(list(view.accounts.values()), list(view.holds.values()))
    )


def _accounts_from_snapshot(data: bytes) -> AccountsView:
    snapshot = msgspec.msgpack.decode(data, type=_AccountsSnapshot)
    view = AccountsView()
    view.accounts = {account.id: account for account in snapshot.accounts}
    view.holds = {(hold.job_id, hold.attempt): hold for hold in snapshot.holds}
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
QUEUE: ViewKind[QueueView] = ViewKind("queue", QueueView, _queue_to_snapshot, _queue_from_snapshot)
CHAINS: ViewKind[ChainsView] = ViewKind(
    "chains", ChainsView, _chains_to_snapshot, _chains_from_snapshot
)
MISSIONS: ViewKind[MissionsView] = ViewKind(
    "missions", MissionsView, _missions_to_snapshot, _missions_from_snapshot
)
WORKERS: ViewKind[WorkersView] = ViewKind(
    "workers", WorkersView, _workers_to_snapshot, _workers_from_snapshot
)
PRIORS: ViewKind[PriorsView] = ViewKind(
    "priors", PriorsView, _priors_to_snapshot, _priors_from_snapshot, history=True
)
DECISIONS: ViewKind[OpenDecisionsView] = ViewKind(
    "decisions", OpenDecisionsView, _decisions_to_snapshot, _decisions_from_snapshot
)
SYSTEM: ViewKind[SystemView] = ViewKind(
    "system", SystemView, _system_to_snapshot, _system_from_snapshot
)
ACCOUNTS: ViewKind[AccountsView] = ViewKind(
    "accounts", AccountsView, _accounts_to_snapshot, _accounts_from_snapshot
)
JOB_STATUSES: ViewKind[JobStatusView] = ViewKind(
    "job-statuses", JobStatusView, _statuses_to_snapshot, _statuses_from_snapshot, history=True
)
VIEW_KINDS: dict[str, ViewKind[Any]] = {
    kind.name: kind
    for kind in (
        JOBS,
        MISSIONS,
        WORKERS,
        PRIORS,
        DECISIONS,
        baselines_kind(200),
        JOB_STATUSES,
        QUEUE,
        CHAINS,
        ACCOUNTS,
        SYSTEM,
    )
}


#: A view keeps a history snapshot once it has folded this many positions past its newest.
HISTORY_INTERVAL = 50_000
#: At most this many history snapshots per view: past it, every other one is dropped (the
#: newest kept), which at least doubles the gaps and so the interval for new ones.
HISTORY_KEEP = 16
_SNAPSHOT_NAME = re.compile(r"^(\d{12})\.msgpack$")


class Views:
    """The persisted views of one home, and the history snapshots of the small ones.

    A kind with ``history`` keeps snapshots at positions along the log under
    ``projections/history/<name>/<position>.msgpack`` (each a ``_Saved`` with its line's
    chain hash), written as its views fold forward (current, rebuild, as_of, save) past the
    newest by the interval; ``as_of`` resumes from the nearest one at or before the position.
    The interval is the history's smallest gap (at least ``interval``), so thinning widens it
    and the count stays at most ``keep`` whatever the log's length.
    """

    def __init__(
        self,
        home: Path,
        ledger: Ledger,
        reader: EventReader | None = None,
        *,
        interval: int = HISTORY_INTERVAL,
        keep: int = HISTORY_KEEP,
    ) -> None:
        self.dir = home / "projections"
        self.ledger = ledger
        self.reader = reader or EventReader()
        self.interval = interval
        self.keep = keep

    def current(self, kind: ViewKind[V]) -> V:
        """The view folded up to the end of the log (resuming from its saved position).

        A saved view whose position's chain hash differs from the log's was folded from
        another history (a restored or replaced log): it is dropped and folded afresh.
        """
        view = self._load(kind)
        start = view.position  # type: ignore[attr-defined]
        last = self.ledger.last_position()
        if last > start:
            self._fold_kept([(kind, view)], last)
            self._save(kind, view)
        return view

    def saved(self, kind: ViewKind[V]) -> V:
        """The view as last saved, not folded further (a fresh one if none fits this log)."""
        return self._load(kind)

    def advance(self, view: V) -> V:
        """Fold a view the caller keeps in memory (a server's live one) to the end of the log;
        not saved."""
        position: int = view.position  # type: ignore[attr-defined]
        last = self.ledger.last_position()
        if last > position:
            self._fold([view], position + 1, last)
        return view

    def rebuild(self, kind: ViewKind[V], progress: Callable[[int], None] | None = None) -> V:
        """Fold the whole log into a fresh view, then swap it in atomically (its history is
        written anew on the way)."""
        view: V = self.rebuild_all([kind], progress)[0]
        return view

    def rebuild_all(
        self, kinds: list[ViewKind[Any]], progress: Callable[[int], None] | None = None
    ) -> list[Any]:
        """``rebuild`` for several views in one pass over the log (each event is read and
        decoded once for all of them), each saved once the pass is done."""
        for kind in kinds:
            for position in self.history(kind):
                self._history_path(kind, position).unlink(missing_ok=True)
        views = [(kind, kind.new()) for kind in kinds]
        self._fold_kept(views, self.ledger.last_position(), progress)
        for kind, view in views:
            self._save(kind, view)
        return [view for _, view in views]

    def as_of(
        self, kind: ViewKind[V], position: int, progress: Callable[[int], None] | None = None
    ) -> V:
        """The view as it was right after ``position`` (not saved)."""
        view: V = self.as_of_all([kind], position, progress)[0]
        return view

    def as_of_all(
        self,
        kinds: list[ViewKind[Any]],
        position: int,
        progress: Callable[[int], None] | None = None,
    ) -> list[Any]:
        """Several views as they were right after ``position``, folded in one pass.

        Each starts from its nearest snapshot at or before the position (its history, or its
        saved view), so only the events after that are read; none is saved, but passing the
        newest history snapshot by the interval keeps a new one.
        """
        at = min(position, self.ledger.last_position())
        views = [(kind, self._nearest(kind, at)) for kind in kinds]
        self._fold_kept(views, at, progress)
        return [view for _, view in views]

    def save(self, kind: ViewKind[V], view: V) -> None:
        """Persist a view the caller folded further (the live engine's, after a run)."""
        self._save(kind, view)
        if kind.history and view.position >= self._due(kind):  # type: ignore[attr-defined]
            self._keep(kind, view)

    def history(self, kind: ViewKind[Any]) -> list[int]:
        """The positions of the kind's history snapshots, oldest first."""
        try:
            names = [path.name for path in (self.dir / "history" / kind.name).iterdir()]
        except FileNotFoundError:
            return []
        return sorted(int(m[1]) for name in names if (m := _SNAPSHOT_NAME.match(name)))

    def _fold_kept(
        self,
        views: list[tuple[ViewKind[Any], Any]],
        last: int,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Fold every view up to ``last`` in one pass over the log, each from its own position,
        keeping history snapshots where they fall due."""
        waiting = sorted(views, key=lambda pair: int(pair[1].position))
        active: list[tuple[ViewKind[Any], Any]] = []
        due: dict[str, int] = {}
        done = 0
        step = None if progress is None else (lambda count: progress(done + count))
        reached = waiting[0][1].position if waiting else last
        while reached < last:
            while waiting and waiting[0][1].position <= reached:
                active.append(waiting.pop(0))
            stops = [last, *(view.position for _, view in waiting)]
            for kind, view in active:
                if not kind.history:
                    continue
                if kind.name not in due:
                    due[kind.name] = self._due(kind)
                if view.position >= due[kind.name]:
                    self._keep(kind, view)
                    due[kind.name] = self._due(kind)
                stops.append(due[kind.name])
            stop = min(stops)
            done += self._fold([view for _, view in active], reached + 1, stop, step)
            reached = stop
        for kind, view in active:
            if kind.history and view.position >= due.get(kind.name, self._due(kind)):
                self._keep(kind, view)

    def _fold(
        self,
        views: list[Any],
        first: int,
        last: int,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Apply the events ``first..last`` to every view; how many events were read.

        Each event goes only to the views whose ``FOLDS`` hold its class; an event no view
        folds is skipped undecoded.
        """
        routes: dict[type[Event], list[Callable[[int, Event], None]]] = {}
        folds: list[frozenset[type[Event]]] = [view.FOLDS for view in views]
        topics: frozenset[str] | None = frozenset(cls.TOPIC for fold in folds for cls in fold)
        if topics is not None and topics >= self.reader.topics:
            topics = None  # finding each line's topic would only cost time

        def route(kind: type[Event]) -> list[Callable[[int, Event], None]]:
            applies = routes[kind] = [
                view.apply for view, fold in zip(views, folds, strict=True) if kind in fold
            ]
            return applies

        # A fold makes no reference cycles, but it allocates millions of objects while many
        # live ones exist: the cyclic collector's passes would cost a third of the time.
        collecting = gc.isenabled()
        gc.disable()
        count = 0
        try:
            for count, (position, event) in enumerate(
                self.reader.events(self.ledger, first, last, topics), 1
            ):
                applies = routes.get(type(event))
                for apply in route(type(event)) if applies is None else applies:
                    apply(position, event)
                if progress is not None and count % 100_000 == 0:
                    progress(count)
        finally:
            if collecting:
                gc.enable()
        for view in views:
            view.position = max(view.position, last)
        return count

    def _nearest(self, kind: ViewKind[V], at: int) -> V:
        """The kind's newest snapshot at or before ``at`` whose chain hash is the log's (a
        history snapshot of another log is removed), or a new view."""
        best = self._read(self.dir / f"{kind.name}.msgpack", kind, at)
        if best is None:
            best = kind.new()
        for position in reversed(self.history(kind)):
            if position <= best.position:  # type: ignore[attr-defined]
                break
            if position > at:
                continue
            path = self._history_path(kind, position)
            found = self._read(path, kind, at)
            if found is not None:
                return found
            path.unlink(missing_ok=True)
        return best

    def _due(self, kind: ViewKind[Any]) -> int:
        """The position from which the kind's next history snapshot is kept."""
        kept = self.history(kind)
        gaps = [later - earlier for earlier, later in itertools.pairwise(kept)]
        return (kept[-1] if kept else 0) + max(self.interval, min(gaps, default=0))

    def _keep(self, kind: ViewKind[V], view: V) -> None:
        """Write a history snapshot of ``view``, then thin the history to ``keep``."""
        position: int = view.position  # type: ignore[attr-defined]
        if position < 1:
            return
        path = self._history_path(kind, position)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_durably(path, self._encoded(kind, view))
        kept = self.history(kind)
        if len(kept) > self.keep:
            for dropped in kept[::-1][1::2]:
                self._history_path(kind, dropped).unlink(missing_ok=True)

    def _history_path(self, kind: ViewKind[Any], position: int) -> Path:
        return self.dir / "history" / kind.name / f"{position:012d}.msgpack"

    def _load(self, kind: ViewKind[V]) -> V:
        view = self._read(self.dir / f"{kind.name}.msgpack", kind, None)
        return kind.new() if view is None else view

    def _read(self, path: Path, kind: ViewKind[V], at: int | None) -> V | None:
        """The view saved at ``path`` if it is readable, from this log (its chain hash), and
        (given ``at``) at or before ``at``; its state is decoded only then."""
        try:
            saved = msgspec.msgpack.decode(path.read_bytes(), type=_Saved)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None
        if at is not None and saved.position > at:
            return None
        if saved.position and self.ledger.hash_at(saved.position) != saved.head:
            return None
        try:
            view = kind.load(bytes(saved.state))
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        view.position = saved.position  # type: ignore[attr-defined]
        return view

    def _save(self, kind: ViewKind[V], view: V) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_durably(self.dir / f"{kind.name}.msgpack", self._encoded(kind, view))

    def _encoded(self, kind: ViewKind[V], view: V) -> bytes:
        position: int = view.position  # type: ignore[attr-defined]
        saved = _Saved(position, self.ledger.hash_at(position), msgspec.Raw(kind.dump(view)))
        return msgspec.msgpack.encode(saved)
