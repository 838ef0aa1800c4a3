"""A dispatcher's round that loses a version race to another writer is re-read, never an
error: nothing of the failed save ran, the views are loaded again, and the next round goes
on (issue 9, item 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from events.decisions import DecisionMade
from events.jobs import JobStarted
from sheratan.dispatch.service import EngineConfig, open_runner, resumes_after
from sheratan.home import Home, init_home
from tests.decision_helpers import events


def test_a_round_that_loses_a_race_reloads_and_goes_on(tmp_path: Path) -> None:
    init_home(tmp_path / "h")
    home = Home.open(tmp_path / "h")
    operator = Home.open(tmp_path / "h")  # another process's handle on the same home
    home.app.register_worker("w", ("noop",), "local")
    first = home.app.create_job("noop", {})
    second = home.app.create_job("noop", {})
    runner = open_runner(home, EngineConfig.load(workspace=tmp_path), name="d1")
    recorder = runner.dispatcher.recorder
    flush = recorder.flush

    def flush_after_an_operator(*args: Any, **kwargs: Any) -> list[int]:
        recorder.flush = flush  # type: ignore[method-assign]
        operator.app.cancel_job(first, "cancelled while the dispatcher decided")
        return flush(*args, **kwargs)

    recorder.flush = flush_after_an_operator  # type: ignore[method-assign]
    stats = runner.drain()

    assert runner.lost_races == 1
    assert runner.dispatcher.recorder is not recorder  # loaded again
    assert home.app.get_job(first).status == "cancelled"
    assert home.app.get_job(second).status == "completed"
    logged = [e for _, e in events(home)]
    assert [e.job_id for e in logged if isinstance(e, DecisionMade)] == [second]
    assert [e.originator_id for e in logged if isinstance(e, JobStarted)] == [second]
    assert stats.completed == 1
    assert resumes_after(home, "d1") is not None
    assert home.verify().ok
