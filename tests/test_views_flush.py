"""A saved view never holds what the log does not (issue 8, point 3): when a dispatcher's
flush fails, the live views (which already folded the unwritten events) are not saved, so the
next open answers from the log, not from a view that says ``completed`` for a queued job."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from sheratan.dispatch.service import EngineConfig, dispatch
from sheratan.home import Home
from sheratan.store.ledger import Ledger
from sheratan.store.recorders import JsonlApplicationRecorder
from sheratan.views import JOBS, PRIORS, WORKERS, baselines_kind
from tests.cli_helpers import as_json


class DiskFullRecorder(JsonlApplicationRecorder):
    """The real recorder over the real files, whose disk fills up after ``saves`` saves."""

    def __init__(self, ledger: Ledger, saves: int) -> None:
        super().__init__(ledger)
        self.saves = saves

    def insert_events(self, stored_events: Any, **kwargs: Any) -> Any:
        if self.saves == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.saves -= 1
        return super().insert_events(stored_events, **kwargs)


def test_a_failed_flush_leaves_saved_views_equal_to_a_fold_of_the_log(tmp_path: Path) -> None:
    home = tmp_path / "h"
    as_json(home, "init")
    as_json(home, "worker", "register", "w", "--kinds", "noop", "--transport", "local")
    jobs = [as_json(home, "job", "create", "noop")["id"] for _ in range(5)]
    config = EngineConfig.load(workspace=tmp_path)
    opened = Home.open(home)
    opened.app.recorder = DiskFullRecorder(opened.ledger, saves=4)  # two saves a job
    with pytest.raises(OSError, match="No space left"):
        dispatch(opened, config)
    opened.close()

    # the log holds two dispatched jobs; the third was folded into the live views, not written
    statuses = {str(j.id): j.status for j in as_json_jobs(home)}
    assert sorted(statuses[job] for job in jobs) == ["completed"] * 2 + ["queued"] * 3

    fresh = Home.open(home)
    last = fresh.ledger.last_position()
    for kind in (JOBS, WORKERS, PRIORS, baselines_kind(config.scoring.baselines.window)):
        saved = fresh.views.current(kind)
        folded = fresh.views.as_of(kind, last)
        assert kind.dump(saved) == kind.dump(folded), kind.name
        assert saved.position == folded.position == last  # type: ignore[attr-defined]
    fresh.close()
    # and a later run picks the queued jobs up from the log
    report = as_json(home, "dispatch", "--until-idle", "--workspace", str(tmp_path))
    assert report["completed"] == 3
    assert as_json(home, "audit", "verify")["ok"] is True


def as_json_jobs(home: Path) -> list[Any]:
    """The jobs as a fresh fold of the whole log has them (never a saved view)."""
    opened = Home.open(home)
    try:
        return list(opened.views.as_of(JOBS, opened.ledger.last_position()).jobs.values())
    finally:
        opened.close()
