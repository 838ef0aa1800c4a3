"""The Sheratan application: commands that check the rules and record events.

Aggregates are immutable states folded by projections/ (``project_job`` and friends);
a command reads the current state, checks the lifecycle, and saves new events directly.
A rejected command raises and records nothing. Persistence comes from the environment:
``PERSISTENCE_MODULE`` (default ``sheratan.store``) and ``SHERATAN_HOME``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar, NamedTuple, TypeVar, cast
from uuid import UUID, uuid4, uuid5

import msgspec
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import ApplicationRecorder, IntegrityError

from events import Event, utc_now
from events.accounts import AccountCredited, AccountOpened
from events.audit import ApiTokenRotated, Revealed
from events.decisions import GateResult, PriorsSeeded
from events.jobs import (
    PRIORITIES,
    JobCancelled,
    JobCompleted,
    JobCreated,
    JobDispatched,
    JobFailed,
    JobQuarantined,
    JobQueued,
    JobRequeued,
    JobRetryScheduled,
    JobStarted,
    JobTimedOut,
    Priority,
)
from events.missions import (
    MissionActivated,
    MissionCancelled,
    MissionCompleted,
    MissionCreated,
    TaskCreated,
)
from events.policy import PolicyRecorded, ReplayRun
from events.workers import (
    TRANSPORTS,
    Transport,
    WorkerHeartbeat,
    WorkerQuarantined,
    WorkerRegistered,
    WorkerReleased,
)
from projections.jobs import JobState, JobsView, apply_job, project_job
from projections.missions import MissionState, TaskState, project_mission, project_task
from projections.system import SystemState, project_system
from projections.workers import WorkerState, project_worker
from sheratan.decide.policy import PriorSeed
from sheratan.inputs import (
    MAX_DEPENDENCIES,
    MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
    MAX_RETRIES,
    MAX_TIMEOUT_SECONDS,
    MAX_TITLE_CHARS,
    InvalidInputError,
    check_kinds,
    check_object,
    check_payload,
    check_text,
)
from sheratan.lifecycle import (
    cascade_cancellations,
    job_event,
    resumptions,
)
from sheratan.streams import (
    account_stream,
    policy_stream,
    priors_stream,
    system_stream,
    worker_stream,
)
from sheratan.system_state import OPERATOR, check_state_name, transition_event

#: Namespace of job ids derived from idempotency keys (so a key maps to one job, race-free).
IDEMPOTENCY_NAMESPACE = UUID("5d3c1f0e-8f0b-4c52-9a57-3c1f6a2e9b11")

_canonical = msgspec.json.Encoder(order="sorted")


#: How often an operator's command reads again after another process took a version first.
MAX_RACES = 5

_R = TypeVar("_R")


def rereads(method: Callable[..., _R]) -> Callable[..., _R]:
    """Run a read-then-save command again when another process saved to the same stream
    between its read and its save (a dispatcher leasing the job, a worker reporting it):
    the command is checked again on the fresh state, so it still refuses what the lifecycle
    forbids by then. After MAX_RACES lost races the last IntegrityError stands."""

    @functools.wraps(method)
    def again(*args: Any, **kwargs: Any) -> _R:
        for _ in range(MAX_RACES - 1):
            try:
                return method(*args, **kwargs)
            except IntegrityError:
                continue
        return method(*args, **kwargs)

    return again


class AlreadyExistsError(InvalidInputError):
    """Something to create exists already (bad input on the CLI, a conflict over HTTP)."""


class NotFoundError(LookupError):
    """No mission, task or job with that id."""


class IdempotencyConflictError(InvalidInputError):
    """An idempotency key used again for a job with other fields (the API answers 409)."""


class GateRefusedError(Exception):
    """A gate that reads the job alone refused it at creation; nothing was recorded."""

    def __init__(self, refusal: GateResult) -> None:
        super().__init__(f"gate {refusal.gate} refuses the job: {refusal.reason}")
        self.gate = refusal.gate
        self.reason = refusal.reason or ""


#: Checks a job right before it is recorded; raises to refuse it (``sheratan.admission``).
Admission = Callable[[JobCreated], None]


class Submitted(NamedTuple):
    """What a job submission did: the job's id, and whether it was made now (False: an
    idempotent repeat of the job its key made before)."""

    id: UUID
    created: bool


def payload_hash(payload: dict[str, Any]) -> str:
    """sha256 of the payload's canonical JSON (sorted keys), in hex."""
    return hashlib.sha256(_canonical.encode(payload)).hexdigest()


class Sheratan(Application[UUID]):
    """Missions, tasks and jobs as events in one log."""

    name = "Sheratan"
    env: ClassVar[dict[str, str]] = {
        "PERSISTENCE_MODULE": "sheratan.store",
        "MAPPER_TOPIC": "sheratan.codec:MsgspecMapper",
    }

    def construct_recorder(self) -> ApplicationRecorder:
        """The persistence module's process recorder: an application recorder that also
        commits a tracking record with the events it saves (``Recorder.flush(tracking)``).
        The embedded store's application recorder does that anyway (one ledger); the
        library's PostgreSQL application recorder would drop the tracking record, so a
        dispatcher could not resume from its own position there.

        On PostgreSQL the library creates its tables as it makes the recorder, so processes
        opening the application at once take turns (``creating_tables``)."""
        datastore = getattr(self.factory, "datastore", None)
        if type(self.factory).__module__ != "eventsourcing.postgres" or datastore is None:
            return self.factory.process_recorder()
        from sheratan.postgres.locks import creating_tables

        with creating_tables(datastore):
            return self.factory.process_recorder()

    # ----------------------------------------------------------- missions, tasks

    def create_mission(self, title: str, description: str = "") -> UUID:
        _check_title(title, description)
        mission_id = uuid4()
        self.save(self._new(MissionCreated, mission_id, 1, title=title, description=description))
        return mission_id

    def activate_mission(self, mission_id: UUID) -> None:
        self._mission_step(mission_id, MissionActivated, {"created"})

    def complete_mission(self, mission_id: UUID) -> None:
        self._mission_step(mission_id, MissionCompleted, {"active"})

    def cancel_mission(self, mission_id: UUID, reason: str = "") -> None:
        check_text("reason", reason, MAX_DESCRIPTION_CHARS, required=False)
        self._mission_step(mission_id, MissionCancelled, {"created", "active"}, reason=reason)

    def _mission_step(
        self, mission_id: UUID, event_type: type[Event], allowed: set[str], **fields: Any
    ) -> None:
        mission = self.get_mission(mission_id)
        if mission.status not in allowed:
            msg = f"mission {mission_id} is {mission.status}: cannot record {event_type.TOPIC}"
            raise InvalidInputError(msg)
        self.save(self._new(event_type, mission_id, mission.version + 1, **fields))

    def create_task(self, mission_id: UUID, title: str, description: str = "") -> UUID:
        _check_title(title, description)
        self.get_mission(mission_id)
        task_id = uuid4()
        self.save(
            self._new(
                TaskCreated, task_id, 1, mission_id=mission_id, title=title, description=description
            )
        )
        return task_id

    def get_mission(self, mission_id: UUID) -> MissionState:
        return self._get(mission_id, project_mission, "mission")

    def get_task(self, task_id: UUID) -> TaskState:
        return self._get(task_id, project_task, "task")

    # ---------------------------------------------------------------------- jobs

    def create_job(self, kind: str, payload: dict[str, Any], **options: Any) -> UUID:
        """Create a job and queue it (``submit_job``); returns its id."""
        return self.submit_job(kind, payload, **options).id

    def submit_job(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        task_id: UUID | None = None,
        priority: Priority = "normal",
        timeout_seconds: float = 300.0,
        depends_on: tuple[UUID, ...] = (),
        idempotency_key: str | None = None,
        max_retries: int = 3,
        namespace: str = "",
        admit: Admission | None = None,
        payer: str | None = None,
        budget_micros: int | None = None,
    ) -> Submitted:
        """Create a job and queue it. With an idempotency key, the same key gives the same job
        (``created`` False: a repeat, however many callers race with it).
        ``namespace`` "" is real work; a simulation's namespace keeps it from real dispatchers.

        Every input is checked before anything is recorded: a known kind, a payload that fits
        the kind's schema, limits. A dependency named twice is one. Reusing a key with any
        different field is refused, naming the field, rather than silently ignored.
        ``admit`` (``sheratan.admission``: the creation limits, and over HTTP the job-only
        gates) may refuse the job by raising; nothing is recorded then.
        ``payer`` names the account charged for its attempts (it must exist), ``budget_micros``
        the most one attempt may be estimated at.

        Every dependency must already exist, and a job cannot depend on itself (its id is
        known in advance with an idempotency key). So each dependency edge points to a job
        created earlier, and the dependency graph cannot hold a cycle: that is the whole
        cycle check.
        """
        depends_on = tuple(dict.fromkeys(depends_on))
        if idempotency_key is not None:
            check_text("idempotency key", idempotency_key, MAX_NAME_CHARS)
        digest = check_job_input(kind, payload, priority, timeout_seconds, depends_on, max_retries)
        self.check_payer(payer, budget_micros)
        mission_id = self.get_task(task_id).mission_id if task_id is not None else None
        job_id = uuid5(IDEMPOTENCY_NAMESPACE, idempotency_key) if idempotency_key else uuid4()
        if job_id in depends_on:
            msg = f"job {job_id} cannot depend on itself"
            raise InvalidInputError(msg)
        for dependency in depends_on:
            try:
                self.get_job(dependency)
            except NotFoundError:
                msg = f"no job {dependency} to depend on (dependencies must exist first)"
                raise NotFoundError(msg) from None
        created = self._new(
            JobCreated,
            job_id,
            1,
            task_id=task_id,
            mission_id=mission_id,
            kind=kind,
            payload=payload,
            payload_hash=digest,
            priority=priority,
            timeout_seconds=float(timeout_seconds),
            depends_on=tuple(depends_on),
            idempotency_key=idempotency_key,
            max_retries=max_retries,
            namespace=namespace,
            payer=payer,
            budget_micros=budget_micros,
        )
        if admit is not None:
            assert isinstance(created, JobCreated)
            admit(created)
        try:
            self.save(created, self._new(JobQueued, job_id, 2))
        except IntegrityError:
            if idempotency_key is None:
                raise
            differing = _differences(self.get_job(job_id), created)
            if differing:
                msg = (
                    f"idempotency key {idempotency_key!r} was used for a job with a different "
                    f"{', '.join(differing)}"
                )
                raise IdempotencyConflictError(msg) from None
            return Submitted(job_id, created=False)
        return Submitted(job_id, created=True)

    def get_job(self, job_id: UUID) -> JobState:
        return self._get(job_id, project_job, "job")

    def queue_job(self, job_id: UUID) -> None:
        self._step(job_id, JobQueued)

    def dispatch_job(self, job_id: UUID, worker: str, decision_id: UUID | None = None) -> None:
        job = self.get_job(job_id)
        lease_until = utc_now() + timedelta(seconds=job.timeout_seconds)
        self._step(
            job_id,
            JobDispatched,
            job=job,
            worker=worker,
            attempt=job.attempt + 1,
            lease_until=lease_until,
            decision_id=decision_id,
        )

    def start_job(self, job_id: UUID) -> None:
        job = self.get_job(job_id)
        self._step(job_id, JobStarted, job=job, worker=job.worker or "", attempt=job.attempt)

    def complete_job(self, job_id: UUID, result: dict[str, Any]) -> None:
        self._step(job_id, JobCompleted, result=result)

    def fail_job(self, job_id: UUID, error: str, code: str = "error") -> None:
        self._step(job_id, JobFailed, error=error, code=code)

    def time_out_job(self, job_id: UUID) -> None:
        job = self.get_job(job_id)
        self._step(job_id, JobTimedOut, job=job, attempt=job.attempt)

    def schedule_retry(self, job_id: UUID) -> None:
        job = self.get_job(job_id)
        self._step(job_id, JobRetryScheduled, job=job, retry_count=job.retry_count + 1)

    @rereads
    def cancel_job(
        self, job_id: UUID, reason: str = "", view: JobsView | None = None
    ) -> list[UUID]:
        """Cancel a job and, given the current jobs view, every job that (transitively)
        depends on it, in one save. Returns the dependents cancelled with it.

        Without a view the dependents are cancelled later, when the dispatcher finds them.
        """
        check_text("reason", reason, MAX_DESCRIPTION_CHARS, required=False)
        job = self.get_job(job_id)
        now = utc_now()
        cancelled = job_event(job, JobCancelled, now, reason=reason)
        cascade = cascade_cancellations(view, apply_job(job, cancelled), now) if view else []
        self.save(cancelled, *cascade)
        return [event.originator_id for event in cascade]

    @rereads
    def requeue_job(self, job_id: UUID, reason: str) -> None:
        """An operator's new attempt for a failed, timed-out or quarantined job."""
        check_text("reason", reason, MAX_DESCRIPTION_CHARS)
        self._step(job_id, JobRequeued, reason=reason)

    @rereads
    def retry_dependents(self, job_id: UUID, view: JobsView) -> list[UUID]:
        """Queue again every job that ``job_id``'s end cancelled (directly or through other
        dependents), once ``job_id`` is back in play; one save. Returns their ids."""
        resumed = resumptions(view, self.get_job(job_id), utc_now())
        if resumed:
            self.save(*resumed)
        return [event.originator_id for event in resumed]

    def quarantine_job(self, job_id: UUID, reason: str) -> None:
        check_text("reason", reason, MAX_DESCRIPTION_CHARS)
        self._step(job_id, JobQuarantined, reason=reason)

    def _step(
        self, job_id: UUID, event_type: type[Event], job: JobState | None = None, **fields: Any
    ) -> None:
        job = job if job is not None else self.get_job(job_id)
        self.save(job_event(job, event_type, utc_now(), **fields))

    # ------------------------------------------------------------------- workers

    def register_worker(
        self,
        worker_id: str,
        kinds: tuple[str, ...],
        transport: Transport,
        *,
        cost_hint: float = 0.0,
        profile: dict[str, Any] | None = None,
        again: bool = False,
    ) -> UUID:
        """Register a worker; ``again`` re-registers one that exists (a daemon starting up:
        new kinds or transport, its quarantine and record kept)."""
        check_text("worker id", worker_id, MAX_NAME_CHARS)
        if not kinds:
            msg = "a worker needs at least one kind"
            raise InvalidInputError(msg)
        check_kinds(kinds)
        if transport not in TRANSPORTS:
            msg = f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}"
            raise InvalidInputError(msg)
        stream = worker_stream(worker_id)
        version = 1
        if again:
            existing = self.recorder.select_events(stream, desc=True, limit=1)
            version = existing[0].originator_version + 1 if existing else 1
        event = self._new(
            WorkerRegistered,
            stream,
            version,
            worker_id=worker_id,
            kinds=tuple(kinds),
            transport=transport,
            cost_hint=cost_hint,
            profile=profile,
        )
        try:
            self.save(event)
        except IntegrityError:
            msg = f"worker {worker_id!r} is already registered"
            raise InvalidInputError(msg) from None
        return stream

    def get_worker(self, worker_id: str) -> WorkerState:
        return self._get(worker_stream(worker_id), project_worker, f"worker {worker_id!r}")

    @rereads
    def quarantine_worker(self, worker_id: str, reason: str) -> None:
        check_text("reason", reason, MAX_DESCRIPTION_CHARS)
        worker = self.get_worker(worker_id)
        if worker.status == "quarantined" and worker.quarantined_until is None:
            msg = f"worker {worker_id!r} is already quarantined"
            raise InvalidInputError(msg)
        self.save(self._new(WorkerQuarantined, worker.stream, worker.version + 1, reason=reason))

    @rereads
    def release_worker(self, worker_id: str) -> None:
        worker = self.get_worker(worker_id)
        if worker.status != "quarantined":
            msg = f"worker {worker_id!r} is not quarantined"
            raise InvalidInputError(msg)
        self.save(self._new(WorkerReleased, worker.stream, worker.version + 1))

    @rereads
    def heartbeat(self, worker_id: str) -> None:
        worker = self.get_worker(worker_id)
        self.save(self._new(WorkerHeartbeat, worker.stream, worker.version + 1))

    # ------------------------------------------------------------------ accounts

    def open_account(self, account_id: str, owner: str = "", balance_micros: int = 0) -> UUID:
        """Open an account (its opening balance, if any, is its first credit)."""
        check_text("account id", account_id, MAX_NAME_CHARS)
        check_text("owner", owner, MAX_NAME_CHARS, required=False)
        check_amount(balance_micros, "balance", zero=True)
        stream = account_stream(account_id)
        events = [self._new(AccountOpened, stream, 1, account_id=account_id, owner=owner)]
        if balance_micros:
            events.append(
                self._new(
                    AccountCredited,
                    stream,
                    2,
                    account_id=account_id,
                    amount_micros=balance_micros,
                    reason="opening balance",
                )
            )
        try:
            self.save(*events)
        except IntegrityError:
            msg = f"account {account_id!r} already exists"
            raise AlreadyExistsError(msg) from None
        return stream

    @rereads
    def credit_account(self, account_id: str, amount_micros: int, reason: str = "") -> int:
        """Credit an account; returns the version of its stream after."""
        check_amount(amount_micros, "amount")
        check_text("reason", reason, MAX_DESCRIPTION_CHARS, required=False)
        version = self._account_version(account_id) + 1
        self.save(
            self._new(
                AccountCredited,
                account_stream(account_id),
                version,
                account_id=account_id,
                amount_micros=amount_micros,
                reason=reason,
            )
        )
        return version

    def _account_version(self, account_id: str) -> int:
        """The last version of the account's stream; NotFoundError if it was never opened."""
        check_text("account id", account_id, MAX_NAME_CHARS)
        last = self.recorder.select_events(account_stream(account_id), desc=True, limit=1)
        if not last:
            raise NotFoundError(f"no account {account_id!r}")
        return last[0].originator_version

    def check_payer(self, payer: str | None, budget_micros: int | None) -> None:
        """A job's payer must be an open account and its budget a positive amount
        (InvalidInputError otherwise); ``simulate --payer`` checks its payer here too."""
        if budget_micros is not None:
            check_amount(budget_micros, "budget")
        if payer is None:
            return
        try:
            self._account_version(payer)
        except NotFoundError:
            msg = f"no account {payer!r} to pay for the job (open it with `account open`)"
            raise InvalidInputError(msg) from None

    # -------------------------------------------------------------------- system

    def get_system(self, namespace: str = "") -> SystemState:
        """The system state of a namespace, folded from its stream (OPERATIONAL when empty)."""
        try:
            return self._get(system_stream(namespace), project_system, "system")
        except NotFoundError:
            return SystemState(namespace)

    def system_history(self, namespace: str = "") -> list[Event]:
        """Every transition and alarm of a namespace's system stream, oldest first."""
        return [cast(Event, event) for event in self.events.get(system_stream(namespace))]

    @rereads
    def transition_system(
        self, target: str, reason: str, *, namespace: str = "", cause: str = OPERATOR
    ) -> SystemState:
        """Move the system to ``target`` (an operator's command: rules never move it from a
        state an operator chose); refused, recording nothing, when the machine forbids it."""
        check_text("reason", reason, MAX_DESCRIPTION_CHARS)
        state = self.get_system(namespace)
        self.save(
            transition_event(state, check_state_name(target), utc_now(), reason=reason, cause=cause)
        )
        return self.get_system(namespace)

    # -------------------------------------------------------------------- priors

    def seed_priors(self, seeds: dict[str, dict[str, PriorSeed]]) -> int:
        """Record a new home's starter priors as events (idempotent: seeded keys are skipped)."""
        events = []
        for intent, actions in seeds.items():
            for key, seed in actions.items():
                events.append(
                    self._new(
                        PriorsSeeded,
                        priors_stream(intent, key),
                        1,
                        intent=intent,
                        action_key=key,
                        visits=seed.visits,
                        mean_score=seed.mean_score,
                        last_scores=seed.last_scores,
                    )
                )
        try:
            self.save(*events)
        except IntegrityError:
            return 0
        return len(events)

    # ------------------------------------------------------------ policy, replay

    def record_policy(
        self, policy_id: str, scoring: dict[str, Any], gates: dict[str, Any], workspace: str
    ) -> bool:
        """Record a policy snapshot once (idempotent by id). True when it was new."""
        event = self._new(
            PolicyRecorded,
            policy_stream(policy_id),
            1,
            policy_id=policy_id,
            scoring=scoring,
            gates=gates,
            workspace=workspace,
        )
        try:
            self.save(event)
        except IntegrityError:
            return False
        return True

    def record_replay_run(
        self, mode: str, options: dict[str, Any], summary: dict[str, Any]
    ) -> UUID:
        """Append one replay run's mode, options and summary (its own stream)."""
        run_id = uuid4()
        self.save(self._new(ReplayRun, run_id, 1, mode=mode, options=options, summary=summary))
        return run_id

    # --------------------------------------------------------------------- audit

    def record_reveal(self, user: str, command: str, arguments: tuple[str, ...]) -> UUID:
        """Record that ``user`` is about to see raw values through ``command`` (its own stream).

        Callers record first and show after: a reveal that cannot be recorded shows nothing."""
        check_text("user", user, MAX_NAME_CHARS)
        reveal_id = uuid4()
        self.save(
            self._new(Revealed, reveal_id, 1, user=user, command=command, arguments=arguments)
        )
        return reveal_id

    def record_token_rotation(self, user: str, fingerprint: str) -> UUID:
        """Record that ``user`` replaced the API token (its fingerprint, not the token)."""
        check_text("user", user, MAX_NAME_CHARS)
        rotation_id = uuid4()
        self.save(self._new(ApiTokenRotated, rotation_id, 1, user=user, fingerprint=fingerprint))
        return rotation_id

    # ------------------------------------------------------------------- helpers

    @staticmethod
    def _new(event_type: type[Event], stream: UUID, version: int, **fields: Any) -> Event:
        return event_type(
            originator_id=stream, originator_version=version, timestamp=utc_now(), **fields
        )

    def _get(self, stream: UUID, projector: Any, what: str) -> Any:
        """The state folded from a stream; ``what`` names it in errors ("job", "worker 'w'")."""
        name = what if " " in what else f"{what} {stream}"
        try:
            return self.repository.get(stream, projector_func=projector)
        except AggregateNotFoundError:
            raise NotFoundError(f"no {name}") from None
        except (ValueError, TypeError) as error:  # the stream holds events of another kind
            raise NotFoundError(f"no {name} ({error})") from None


def _check_title(title: str, description: str) -> None:
    check_text("title", title, MAX_TITLE_CHARS)
    check_text("description", description, MAX_DESCRIPTION_CHARS, required=False)


#: The fields of a job an idempotency key stands for, as (name in messages, field).
_KEYED_FIELDS = (
    ("kind", "kind"),
    ("payload", "payload_hash"),
    ("task", "task_id"),
    ("dependencies", "depends_on"),
    ("priority", "priority"),
    ("timeout", "timeout_seconds"),
    ("max retries", "max_retries"),
    ("payer", "payer"),
    ("budget", "budget_micros"),
)


def _differences(existing: JobState, created: Event) -> list[str]:
    """The fields in which a job already made with a key differs from a new request."""
    out = []
    for name, field in _KEYED_FIELDS:
        before, after = getattr(existing, field), getattr(created, field)
        if field == "depends_on":
            before, after = set(before), set(after)
        if before != after:
            out.append(name)
    return out


#: The largest amount one credit, opening balance or budget may hold (a trillion units).
MAX_AMOUNT_MICROS = 10**18


def check_amount(amount_micros: int, what: str, *, zero: bool = False) -> None:
    """An amount in micro-units: a whole number above 0 (or 0 when ``zero``), at most
    MAX_AMOUNT_MICROS."""
    low = 0 if zero else 1
    if isinstance(amount_micros, bool) or not isinstance(amount_micros, int):
        msg = f"{what} must be a whole number of micro-units"
        raise InvalidInputError(msg)
    if not low <= amount_micros <= MAX_AMOUNT_MICROS:
        bound = "at least 0" if zero else "above 0"
        msg = f"{what} must be {bound} and at most {MAX_AMOUNT_MICROS // 10**6:,} units"
        raise InvalidInputError(msg)


def check_job_input(
    kind: str,
    payload: dict[str, Any],
    priority: str,
    timeout_seconds: float,
    depends_on: tuple[UUID, ...],
    max_retries: int,
) -> str:
    """Every check of a job's own fields (InvalidInputError with the CLI's message); its
    payload's hash."""
    check_kinds((kind,))
    if not isinstance(payload, dict):
        msg = "payload must be a JSON object"
        raise InvalidInputError(msg)
    check_object(payload, "payload")
    check_payload(kind, payload)
    if priority not in PRIORITIES:
        msg = f"priority must be one of {', '.join(PRIORITIES)}, not {priority!r}"
        raise InvalidInputError(msg)
    if not 0 < timeout_seconds <= MAX_TIMEOUT_SECONDS:
        msg = f"timeout must be above 0 and at most {MAX_TIMEOUT_SECONDS:.0f} seconds"
        raise InvalidInputError(msg)
    if not 0 <= max_retries <= MAX_RETRIES:
        msg = f"max_retries must be between 0 and {MAX_RETRIES}"
        raise InvalidInputError(msg)
    if len(depends_on) > MAX_DEPENDENCIES:
        msg = f"a job may depend on at most {MAX_DEPENDENCIES} jobs"
        raise InvalidInputError(msg)
    return payload_hash(payload)
