"""A Sheratan home: the folder that holds one ledger, its indexes, views and checkpoints.

Resolution order: ``--home``, then ``SHERATAN_HOME``, then ``./.sheratan``. A home is made by
``init`` (it writes ``sheratan.json``); every other command refuses a folder without it, so a
typo in a path never silently starts a new, empty history. The marker also says where the log
lives: in the home's JSONL segments (the default), or in PostgreSQL (``sheratan.postgres``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal, cast

import msgspec

from sheratan.api.tokens import new_token
from sheratan.app import Sheratan
from sheratan.decide.policy import load_prior_seeds
from sheratan.inputs import InvalidInputError
from sheratan.postgres.target import PostgresTarget, read_password, save_password
from sheratan.store.audit import Verification, verify
from sheratan.store.factory import open_ledger
from sheratan.store.files import write_durably
from sheratan.store.ledger import CorruptLogError, Ledger
from sheratan.store.wake import Waker
from sheratan.views import Views

DEFAULT_HOME = ".sheratan"
MARKER = "sheratan.json"
HOME_FORMAT = 1


class HomeMissingError(FileNotFoundError):
    """The folder is not a Sheratan home (yet)."""


Store = Literal["embedded", "postgres"]


class HomeMarker(msgspec.Struct):
    format: int
    log: str = "events"
    store: Store = "embedded"
    #: Where a PostgreSQL home's log lives (never its password: sheratan.postgres.target).
    postgres: PostgresTarget | None = None


def resolve_home(option: str | None) -> Path:
    return Path(option or os.environ.get("SHERATAN_HOME") or DEFAULT_HOME).absolute()


def read_marker(path: Path) -> HomeMarker:
    """The marker of the home at ``path`` (HomeMissingError when there is none)."""
    try:
        return msgspec.json.decode((path / MARKER).read_bytes(), type=HomeMarker)
    except FileNotFoundError:
        msg = f"no Sheratan home at {path}: run `sheratan init` (or pass --home)"
        raise HomeMissingError(msg) from None
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        msg = f"{path / MARKER} is not a Sheratan marker ({error})"
        raise HomeMissingError(msg) from None


def init_home(path: Path, postgres: PostgresTarget | None = None, password: str = "") -> bool:
    """Make ``path`` a home (idempotent). True when it was created now.

    With ``postgres`` its log lives in that database (a database that already holds a
    Sheratan log is joined: seeding is idempotent); the password, if any, is kept beside the
    marker, never in it."""
    wanted = HomeMarker(HOME_FORMAT)
    if postgres is not None:
        wanted = HomeMarker(HOME_FORMAT, store="postgres", postgres=postgres)
    marker = path / MARKER
    if marker.exists():
        existing = read_marker(path)
        if postgres is not None and existing.postgres != postgres:
            where = existing.postgres.display() if existing.postgres else "the embedded store"
            msg = f"{path} is already a home on {where}, not on {postgres.display()}"
            raise InvalidInputError(msg)
        return False
    if postgres is not None:
        postgres.check_reachable(password)  # before anything is written
    path.mkdir(parents=True, exist_ok=True)
    if postgres is not None:
        save_password(path, password)
    home = Home(path, wanted)
    home.app.seed_priors(load_prior_seeds())  # policies/priors.json only seeds a new home
    new_token(path)  # the API's bearer token: random, 0600, never a default
    write_durably(marker, msgspec.json.encode(wanted))
    return True


def _embedded() -> HomeMarker:
    return HomeMarker(HOME_FORMAT)


@dataclass
class Home:
    """An opened home: the application, its ledger and its views."""

    path: Path
    marker: HomeMarker = field(default_factory=_embedded)

    @classmethod
    def open(cls, path: Path) -> Home:
        return cls(path, read_marker(path))

    @cached_property
    def app(self) -> Sheratan:
        target = self.marker.postgres
        if target is None:
            return Sheratan(
                env={"PERSISTENCE_MODULE": "sheratan.store", "SHERATAN_HOME": str(self.path)}
            )
        password = read_password(self.path)
        target.check_reachable(password)
        return Sheratan(env=target.env(password))

    @cached_property
    def log(self) -> Ledger:
        """The live log, which the views, the dispatchers, admission and ``events tail``
        follow: the ledger itself on an embedded home; on a PostgreSQL home, the database's
        notification log read as ledger lines (``PostgresLog``: last_position, lines,
        hash_at)."""
        if self.marker.postgres is not None:
            from sheratan.postgres.log import PostgresLog

            return cast(Ledger, PostgresLog(self.app.recorder))
        return self.ledger

    @cached_property
    def ledger(self) -> Ledger:
        """The hash-chained JSONL ledger in the home folder, which why, replay, audit and
        sql read: the log itself on an embedded home; on a PostgreSQL home, the exporter's
        copy of the database's log (docs/postgres.md)."""
        return open_ledger(self.path, "events")

    def waker(self) -> Waker:
        """What a follower of the live log sleeps on until something commits: the wake
        files' ``Waker`` on an embedded home, LISTEN/NOTIFY on a PostgreSQL home
        (``sheratan.postgres.wake``). The caller closes it (a context manager)."""
        if self.marker.postgres is not None:
            from sheratan.postgres.wake import PostgresWaker

            return cast(Waker, PostgresWaker(self.app.recorder))
        return Waker(self.ledger)

    @cached_property
    def views(self) -> Views:
        return Views(self.path, self.log)

    def verify(self, progress: Callable[[int], None] | None = None) -> Verification:
        """The chain from the files alone, and what opening the ledger found (seals, files);
        ``progress`` hears the count of events verified."""
        ledger = self.ledger
        committed = None
        if ledger.damage is None:
            with contextlib.suppress(CorruptLogError):  # then verify names it from the files
                cut, _ = ledger.committed_cut()
                committed = cut[-1] if cut else None
        result = verify(ledger.dir, ledger.checkpoints_path, progress, committed=committed)
        damage = ledger.damage
        found = result.first_bad_position
        if damage is not None and (found is None or damage.position < found):
            result.first_bad_position = damage.position
            result.problem = f"position {damage.position}: {damage.problem} ({damage.path})"
        return result

    def close(self) -> None:
        if "app" in self.__dict__:
            self.app.close()
        if "ledger" in self.__dict__:  # never open a ledger only to close it
            self.ledger.close()
