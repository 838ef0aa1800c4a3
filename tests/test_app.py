"""The Sheratan application's commands, on sheratan.store and on eventsourcing.popo."""

from __future__ import annotations

from uuid import uuid4

import pytest

from sheratan.app import InvalidInputError, NotFoundError, Sheratan, payload_hash
from sheratan.lifecycle import IllegalTransitionError


def test_job_runs_through_its_lifecycle(app: Sheratan) -> None:
    mission = app.create_mission("m")
    task = app.create_task(mission, "t")
    job = app.create_job("noop", {"n": 1}, task_id=task, priority="high", max_retries=1)
    assert app.get_job(job).status == "queued"
    assert app.get_job(job).mission_id == mission
    app.dispatch_job(job, "worker-a")
    app.start_job(job)
    app.fail_job(job, "boom", code="E1")
    failed = app.get_job(job)
    assert (failed.status, failed.error, failed.error_code, failed.attempt) == (
        "failed",
        "boom",
        "E1",
        1,
    )
    app.schedule_retry(job)
    app.queue_job(job)
    app.dispatch_job(job, "worker-b")
    app.complete_job(job, {"ok": True})
    done = app.get_job(job)
    assert (done.status, done.worker, done.attempt, done.retry_count) == (
        "completed",
        "worker-b",
        2,
        1,
    )
    assert done.result == {"ok": True}
    assert done.version == 9


def test_illegal_transition_raises_and_records_nothing(app: Sheratan) -> None:
    job = app.create_job("noop", {})
    before = app.recorder.max_notification_id()
    with pytest.raises(IllegalTransitionError, match="queued"):
        app.complete_job(job, {})
    with pytest.raises(IllegalTransitionError):
        app.start_job(job)
    assert app.recorder.max_notification_id() == before
    assert app.get_job(job).status == "queued"


def test_retries_are_bounded_by_max_retries(app: Sheratan) -> None:
    job = app.create_job("noop", {}, max_retries=0)
    app.dispatch_job(job, "w")
    app.time_out_job(job)
    assert app.get_job(job).status == "timed_out"
    with pytest.raises(IllegalTransitionError, match="retries"):
        app.schedule_retry(job)
    app.quarantine_job(job, "poison")
    assert app.get_job(job).status == "quarantined"


def test_idempotency_key_gives_the_same_job_and_refuses_a_different_payload(app: Sheratan) -> None:
    first = app.create_job("noop", {"a": 1}, idempotency_key="k")
    again = app.create_job("noop", {"a": 1}, idempotency_key="k")
    assert first == again
    assert app.get_job(first).payload_hash == payload_hash({"a": 1})
    with pytest.raises(InvalidInputError, match="idempotency key"):
        app.create_job("noop", {"a": 2}, idempotency_key="k")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"priority": "urgent"}, "priority"),
        ({"timeout_seconds": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
    ],
)
def test_bad_job_input_is_refused(app: Sheratan, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        app.create_job("noop", {}, **kwargs)
    assert app.recorder.max_notification_id() is None


def test_unknown_references_are_refused(app: Sheratan) -> None:
    with pytest.raises(NotFoundError):
        app.create_task(uuid4(), "t")
    with pytest.raises(NotFoundError):
        app.create_job("noop", {}, depends_on=(uuid4(),))
    with pytest.raises(NotFoundError):
        app.get_job(uuid4())
    mission = app.create_mission("m")
    with pytest.raises(NotFoundError):
        app.get_job(mission)


def test_mission_lifecycle(app: Sheratan) -> None:
    mission = app.create_mission("m", "d")
    app.activate_mission(mission)
    app.complete_mission(mission)
    assert app.get_mission(mission).status == "completed"
    with pytest.raises(InvalidInputError):
        app.cancel_mission(mission)
