"""Jobs over HTTP: the same services and views as ``sheratan job create|list|show|cancel``.

A create answers 201 with the job, 200 with the same job for an idempotent repeat (the same
key and fields), 409 for a key used before with other fields, 403 naming the gate and its
reason when a gate that reads the job alone (G2 kind, G3 paths, G4 escalation markers)
refuses it: such a job would be gated by every dispatch decision, so it is not recorded;
429 with ``Retry-After`` when the queue or the job's mission is over a creation limit
(``sheratan.limits``).
Jobs are shown redacted, as the CLI shows them without ``--reveal`` (the API has no reveal).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.openapi import ResponseSpec

from events.jobs import Priority
from projections.jobs import JobState, Status
from sheratan.accounts import parse_amount
from sheratan.api.paging import Cursor, Limit, page
from sheratan.api.routing import Rule, home_of, problems
from sheratan.inputs import (
    MAX_DEPENDENCIES,
    MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
    MAX_RETRIES,
    MAX_TIMEOUT_SECONDS,
)
from sheratan.lifecycle import OPERATOR_CANCEL_REASON
from sheratan.reveal import shown
from sheratan.views import JOBS

TAGS = ["jobs"]


#: A budget: units with up to six decimal places.
BUDGET_PATTERN = r"^[0-9]{1,13}(\.[0-9]{1,6})?$"


class NewJob(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A job to create: the fields of ``sheratan job create KIND`` and its options.

    The limits are documented in OpenAPI (``Rule``) and checked by the service, which
    refuses with the CLI's message."""

    kind: Annotated[str, Rule(min_length=1, max_length=MAX_NAME_CHARS)]
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    priority: Priority = "normal"
    depends_on: Annotated[list[UUID], Rule(max_items=MAX_DEPENDENCIES)] = msgspec.field(
        default_factory=list
    )
    idempotency_key: (
        Annotated[str, Rule(min_length=1, max_length=MAX_NAME_CHARS, pattern=r"\S")] | None
    ) = None
    timeout_seconds: Annotated[float, Rule(gt=0, le=MAX_TIMEOUT_SECONDS)] = 300.0
    max_retries: Annotated[int, Rule(ge=0, le=MAX_RETRIES)] = 3
    #: The account charged for its attempts (it must exist: 400 otherwise), and the most
    #: one attempt may be estimated at, in units as decimal text ("2.5").
    payer: Annotated[str, Rule(min_length=1, max_length=MAX_NAME_CHARS)] | None = None
    budget: Annotated[str, Rule(max_length=32, pattern=BUDGET_PATTERN)] | None = None


class Cancellation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, Rule(max_length=MAX_DESCRIPTION_CHARS)] = OPERATOR_CANCEL_REASON


class Cancelled(msgspec.Struct, kw_only=True):
    """What ``sheratan job cancel --json`` prints: the job and the dependents cancelled."""

    id: UUID
    status: Status
    dependents_cancelled: list[UUID]


class JobPage(msgspec.Struct):
    items: list[JobState]
    next_cursor: str | None


def _shown(job: JobState) -> JobState:
    """A job as the CLI shows it without ``--reveal``: secrets and paths redacted."""
    return msgspec.convert(shown(job, reveal=False), JobState)


def _submit(state: State, data: NewJob, task_id: UUID | None) -> Response[JobState]:
    app = home_of(state).app
    submitted = app.submit_job(
        data.kind,
        data.payload,
        task_id=task_id,
        priority=data.priority,
        timeout_seconds=data.timeout_seconds,
        depends_on=tuple(data.depends_on),
        idempotency_key=data.idempotency_key,
        max_retries=data.max_retries,
        admit=state.admission,
        payer=data.payer,
        budget_micros=None if data.budget is None else parse_amount(data.budget, "budget"),
    )
    job = _shown(app.get_job(submitted.id))
    return Response(job, status_code=201 if submitted.created else 200)


_CREATE_RESPONSES = {
    200: ResponseSpec(
        data_container=JobState,
        description="An idempotent repeat: the job this idempotency key made before",
    ),
    **problems(400, 404, 409, 429),
}


class JobsController(Controller):
    """Jobs, in one controller (see ``MissionsController``)."""

    path = "/api"
    tags = TAGS

    @post("/jobs", sync_to_thread=True, responses=_CREATE_RESPONSES)
    def create_job(self, state: State, data: NewJob) -> Response[JobState]:
        """Create a job, queued at once (201; 200 for an idempotent repeat)."""
        return _submit(state, data, None)

    @post("/tasks/{task_id:uuid}/jobs", sync_to_thread=True, responses=_CREATE_RESPONSES)
    def create_task_job(self, state: State, task_id: UUID, data: NewJob) -> Response[JobState]:
        """Create a job in a task (201; 200 for an idempotent repeat)."""
        return _submit(state, data, task_id)

    @get("/jobs", sync_to_thread=True, responses=problems(400))
    def list_jobs(
        self,
        state: State,
        status: Status | None = None,
        kind: str | None = None,
        mission: UUID | None = None,
        task: UUID | None = None,
        limit: Limit = 100,
        cursor: Cursor = None,
    ) -> JobPage:
        """Jobs, oldest first, a page at a time; only those matching every filter given."""
        view = home_of(state).views.current(JOBS)
        wanted = view.matching(status, kind, mission, task)
        items, after = page(wanted, lambda j: (j.created_at, j.id), cursor, limit)
        return JobPage([_shown(job) for job in items], after)

    @get("/jobs/{job_id:uuid}", sync_to_thread=True, responses=problems(404))
    def show_job(self, state: State, job_id: UUID) -> JobState:
        """One job's state (redacted)."""
        return _shown(home_of(state).app.get_job(job_id))

    @post(
        "/jobs/{job_id:uuid}/cancel",
        status_code=200,
        sync_to_thread=True,
        responses=problems(400, 404, 409, 429),
    )
    def cancel_job(self, state: State, job_id: UUID, data: Cancellation | None = None) -> Cancelled:
        """Cancel a job that has not ended, and every job that depends on it, transitively
        (409 for a completed, cancelled or quarantined job; nothing is recorded then)."""
        home = home_of(state)
        reason = (data or Cancellation()).reason
        dependents = home.app.cancel_job(job_id, reason, view=home.views.current(JOBS))
        return Cancelled(id=job_id, status="cancelled", dependents_cancelled=dependents)


JOB_ROUTES = [JobsController]
