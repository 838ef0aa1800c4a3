"""Dependencies (issue 9, point 6): a job that can no longer complete cancels its dependents,
as events, transitively, naming the job whose end started it; unknown and self dependencies
are refused at create, which is what makes a cycle impossible.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4, uuid5

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.jobs import JobCancelled, JobCreated
from projections.jobs import JobsView
from sheratan.app import IDEMPOTENCY_NAMESPACE, NotFoundError, payload_hash
from sheratan.home import Home
from sheratan.inputs import InvalidInputError
from sheratan.lifecycle import cascade_cancellations, job_event
from sheratan.views import JOBS
from tests.cli_helpers import as_json, refused_unrecorded
from tests.states import NOW


@pytest.fixture
def opened(home: Path) -> Iterator[Home]:
    h = Home.open(home)
    yield h
    h.close()


def chain(opened: Home, length: int) -> list[UUID]:
    """Jobs j0 <- j1 <- ... (each depends on the one before)."""
    ids: list[UUID] = []
    for _ in range(length):
        ids.append(opened.app.create_job("noop", {}, depends_on=tuple(ids[-1:])))
    return ids


def test_cancelling_a_job_cancels_its_chain_naming_the_first(opened: Home) -> None:
    a, b, c = chain(opened, 3)
    cancelled = opened.app.cancel_job(a, "not needed", view=opened.views.current(JOBS))
    assert cancelled == [b, c]
    jobs = opened.views.current(JOBS).jobs
    assert jobs[b].status == jobs[c].status == "cancelled"
    assert jobs[b].cancelled_by == jobs[c].cancelled_by == a
    assert jobs[b].error == f"dependency {a} cancelled: not needed"
    assert jobs[c].error == f"dependency {a} cancelled: not needed (through {b})"


def test_a_diamond_cancels_each_dependent_once(opened: Home) -> None:
    app = opened.app
    a = app.create_job("noop", {})
    b = app.create_job("noop", {}, depends_on=(a,))
    c = app.create_job("noop", {}, depends_on=(a,))
    d = app.create_job("noop", {}, depends_on=(b, c))
    before = opened.ledger.last_position()
    assert app.cancel_job(a, view=opened.views.current(JOBS)) == [b, c, d]
    topics = [
        type(e).__name__ for _, e in opened.views.reader.events(opened.ledger, before + 1)
    ]  # one save: a's cancellation and its three dependents', nothing twice
    assert topics == [JobCancelled.__name__] * 4


def test_a_job_that_ended_before_is_left_alone(opened: Home) -> None:
    """The walk descends only through jobs it cancels: a dependent cancelled earlier keeps
    its own reason, and its dependents were cancelled by its own cascade then."""
    a, b, c = chain(opened, 3)
    app = opened.app
    assert app.cancel_job(b, "by hand", view=opened.views.current(JOBS)) == [c]
    assert app.cancel_job(a, view=opened.views.current(JOBS)) == []
    jobs = opened.views.current(JOBS).jobs
    assert jobs[b].error == "by hand" and jobs[b].cancelled_by is None
    assert jobs[c].cancelled_by == b


def test_unknown_and_self_dependencies_are_refused_so_no_cycle_can_form(opened: Home) -> None:
    """A dependency must exist before its dependent, so every edge points back in time."""
    with pytest.raises(NotFoundError, match="to depend on"):
        opened.app.create_job("noop", {}, depends_on=(uuid4(),))
    own = uuid5(IDEMPOTENCY_NAMESPACE, "me")
    with pytest.raises(InvalidInputError, match="cannot depend on itself"):
        opened.app.create_job("noop", {}, depends_on=(own,), idempotency_key="me")
    assert opened.views.current(JOBS).jobs == {}


def test_cli_refuses_unknown_and_self_dependencies_recording_nothing(home: Path) -> None:
    first = as_json(home, "job", "create", "noop")["id"]
    missing = str(uuid4())
    refused_unrecorded(
        home,
        "job", "create", "noop", "--depends-on", first, "--depends-on", missing,
        needle=f"no job {missing} to depend on (dependencies must exist first)",
    )  # fmt: skip
    own = str(uuid5(IDEMPOTENCY_NAMESPACE, "loop"))
    refused_unrecorded(
        home,
        "job", "create", "noop", "--idempotency-key", "loop", "--depends-on", own,
        needle=f"job {own} cannot depend on itself",
    )  # fmt: skip
    assert [j["id"] for j in as_json(home, "job", "list")] == [first]


def test_dispatch_cancels_a_job_created_after_its_dependency_ended(home: Path) -> None:
    """The dispatcher's fallback: a dependent made after the cascade is cancelled when it is
    found in the queue, with the same cause as the jobs of that cascade."""
    as_json(home, "worker", "register", "w1", "--kinds", "noop", "--transport", "local")
    a = as_json(home, "job", "create", "noop")["id"]
    b = as_json(home, "job", "create", "noop", "--depends-on", a)["id"]
    as_json(home, "job", "cancel", a)
    late = as_json(home, "job", "create", "noop", "--depends-on", b)["id"]
    report = as_json(home, "dispatch", "--until-idle")
    assert report["dispatches"] == 0
    shown = as_json(home, "job", "show", late)
    assert shown["status"] == "cancelled" and shown["cancelled_by"] == a
    assert shown["error"] == (f"dependency {a} cancelled: cancelled by an operator (through {b})")


@given(st.lists(st.sets(st.integers(min_value=0, max_value=30), max_size=3), max_size=30))
def test_a_cascade_cancels_exactly_the_descendants_once(edges: list[set[int]]) -> None:
    """Any DAG (job i depends on some earlier jobs): ending job 0 cancels every job that
    reaches it through dependencies, each once, all naming job 0; no other job."""
    view = JobsView()
    ids = [uuid4() for _ in range(len(edges) + 1)]
    for i, job_id in enumerate(ids):
        depends_on = tuple(ids[d] for d in sorted(edges[i - 1]) if d < i) if i else ()
        payload: dict[str, object] = {}
        view.apply(
            i + 1,
            JobCreated(
                originator_id=job_id,
                originator_version=1,
                timestamp=NOW,
                kind="noop",
                payload=payload,
                payload_hash=payload_hash(payload),
                depends_on=depends_on,
            ),
        )
    reaches = {ids[0]}
    for job_id in ids[1:]:
        if reaches & set(view.jobs[job_id].depends_on):
            reaches.add(job_id)
    root = job_event(view.jobs[ids[0]], JobCancelled, NOW, reason="r")
    view.apply(len(ids) + 1, root)
    events = cascade_cancellations(view, view.jobs[ids[0]], NOW)
    cancelled = [event.originator_id for event in events]
    assert len(cancelled) == len(set(cancelled))
    assert set(cancelled) == reaches - {ids[0]}
    assert all(event.cause == ids[0] for event in events)  # type: ignore[attr-defined]
