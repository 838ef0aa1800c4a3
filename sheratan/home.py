"""A Sheratan home: the folder that holds one ledger, its indexes, views and checkpoints.

Resolution order: ``--home``, then ``SHERATAN_HOME``, then ``./.sheratan``. A home is made by
``init`` (it writes ``sheratan.json``); every other command refuses a folder without it, so a
typo in a path never silently starts a new, empty history.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import msgspec

from sheratan.api.tokens import new_token
from sheratan.app import Sheratan
from sheratan.decide.policy import load_prior_seeds
from sheratan.store.audit import Verification, verify
from sheratan.store.factory import open_ledger
from sheratan.store.files import write_durably
from sheratan.store.ledger import CorruptLogError, Ledger
from sheratan.views import Views

DEFAULT_HOME = ".sheratan"
MARKER = "sheratan.json"
HOME_FORMAT = 1


class HomeMissingError(FileNotFoundError):
    """The folder is not a Sheratan home (yet)."""


class HomeMarker(msgspec.Struct):
    format: int
    log: str = "events"


def resolve_home(option: str | None) -> Path:
    return Path(option or os.environ.get("SHERATAN_HOME") or DEFAULT_HOME).absolute()


def init_home(path: Path) -> bool:
    """Make ``path`` a home (idempotent). True when it was created now."""
    marker = path / MARKER
    if marker.exists():
        return False
    path.mkdir(parents=True, exist_ok=True)
    home = Home(path)
    home.app.seed_priors(load_prior_seeds())  # policies/priors.json only seeds a new home
    new_token(path)  # the API's bearer token: random, 0600, never a default
    write_durably(marker, msgspec.json.encode(HomeMarker(HOME_FORMAT)))
    return True


@dataclass
class Home:
    """An opened home: the application, its ledger and its views."""

    path: Path

    @classmethod
    def open(cls, path: Path) -> Home:
        if not (path / MARKER).exists():
            msg = f"no Sheratan home at {path}: run `sheratan init` (or pass --home)"
            raise HomeMissingError(msg)
        return cls(path)

    @cached_property
    def app(self) -> Sheratan:
        return Sheratan(
            env={"PERSISTENCE_MODULE": "sheratan.store", "SHERATAN_HOME": str(self.path)}
        )

    @cached_property
    def ledger(self) -> Ledger:
        return open_ledger(self.path, "events")

    @cached_property
    def views(self) -> Views:
        return Views(self.path, self.ledger)

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
