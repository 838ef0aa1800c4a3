"""The persistence module's Factory: recorders for a home folder, one shared ledger per log."""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    OperationalError,
    ProcessRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic, strtobool

from sheratan.store.ledger import Ledger
from sheratan.store.recorders import (
    JsonlAggregateRecorder,
    JsonlApplicationRecorder,
    JsonlProcessRecorder,
    JsonlTrackingRecorder,
)

DEFAULT_HOME = ".sheratan"

_ledgers: weakref.WeakValueDictionary[tuple[Path, str], Ledger] = weakref.WeakValueDictionary()
_ledgers_lock = threading.Lock()


def open_ledger(home: Path, name: str = "events") -> Ledger:
    """The process's one Ledger for ``home``/``name``, so recorders share index and queue."""
    key = (home.resolve(), name)
    with _ledgers_lock:
        ledger = _ledgers.get(key)
        if ledger is None:
            ledger = _ledgers[key] = Ledger(key[0], name)
        return ledger


class Factory(InfrastructureFactory[JsonlTrackingRecorder]):
    """Constructs JSONL recorders. Environment: SHERATAN_HOME, ORIGINATOR_ID_TYPE, CREATE_TABLE."""

    SHERATAN_HOME = "SHERATAN_HOME"
    ORIGINATOR_ID_TYPE = "ORIGINATOR_ID_TYPE"
    CREATE_TABLE = "CREATE_TABLE"

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        self.home = Path(self.env.get(self.SHERATAN_HOME) or DEFAULT_HOME).absolute()
        id_type = (self.env.get(self.ORIGINATOR_ID_TYPE) or "uuid").lower()
        if id_type not in ("uuid", "text"):
            msg = f"Invalid {self.ORIGINATOR_ID_TYPE} '{id_type}', expected 'uuid' or 'text'"
            raise OSError(msg)
        self.uuid_ids = id_type == "uuid"
        self._opened: list[Ledger] = []

    def _ledger(self, name: str) -> Ledger:
        if not self.home.exists():
            if not strtobool(self.env.get(self.CREATE_TABLE) or "yes"):
                msg = f"no Sheratan home at {self.home} (and {self.CREATE_TABLE} is off)"
                raise OperationalError(msg)
            self.home.mkdir(parents=True)
        ledger = open_ledger(self.home, name)
        self._opened.append(ledger)
        return ledger

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return JsonlAggregateRecorder(self._ledger(purpose), uuid_ids=self.uuid_ids)

    def application_recorder(self) -> ApplicationRecorder:
        return JsonlApplicationRecorder(self._ledger("events"), uuid_ids=self.uuid_ids)

    def tracking_recorder(
        self, tracking_recorder_class: type[JsonlTrackingRecorder] | None = None
    ) -> JsonlTrackingRecorder:
        if tracking_recorder_class is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            tracking_recorder_class = resolve_topic(topic) if topic else JsonlTrackingRecorder
        assert tracking_recorder_class is not None
        if not issubclass(tracking_recorder_class, JsonlTrackingRecorder):
            msg = f"{tracking_recorder_class} is not a JsonlTrackingRecorder"
            raise TypeError(msg)
        return tracking_recorder_class(self._ledger("views"), uuid_ids=self.uuid_ids)

    def process_recorder(self) -> ProcessRecorder:
        return JsonlProcessRecorder(self._ledger("events"), uuid_ids=self.uuid_ids)

    def close(self) -> None:
        for ledger in self._opened:
            ledger.close()
        self._opened.clear()
