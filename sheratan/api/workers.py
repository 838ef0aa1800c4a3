"""Worker routes: register, list, show, quarantine, release; and the pull protocol.

Outside workers pull: ``claim`` (long-poll for an attempt leased to the worker; records the
claim and returns the job with an attempt token), ``heartbeat`` (the worker is alive: G0
keeps choosing it; and it extends the leases of the attempts it runs), ``result`` (the
attempt's outcome, with the attempt token; applied once). The pull routes and the worker's
own record accept that worker's token (see ``sheratan.api.worker_tokens``) as well as the
home's; every other route only the home's.

A pull worker's attempt is leased one term at a time (``lease_term_s``), never past its
deadline (dispatch + ``timeout_seconds``): a heartbeat naming the attempts the worker runs
records ``job.lease_extended`` for those with less than half a term left (and for those
leased to it that it has yet to claim), so a worker that dies is swept within a term. An
attempt the worker does not hold, or one that ended, is not extended (nothing recorded).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, get, post
from litestar.exceptions import HTTPException, NotFoundException, PermissionDeniedException
from litestar.params import Parameter

from projections.workers import WorkerState
from sheratan.api.pull import LostRacesError, PullDesk, UnknownJobError
from sheratan.api.routing import problems
from sheratan.api.worker_tokens import WorkerTokens, check_token_id, issue_worker_token
from sheratan.home import Home
from sheratan.inputs import InvalidInputError
from sheratan.reveal import shown
from sheratan.views import WORKERS
from sheratan.workers.daemon import register_process_worker
from sheratan.workers.outcome import outcome_problem
from sheratan.workers.wire import MAX_WAIT_S, Answer, Beat, Beating, Claim, Extended, Report

#: Routes a worker's own token may call (for the worker named in the path).
WORKER_SCOPED = {"worker_scoped": True}
_desk_lock = threading.Lock()


class Registration(msgspec.Struct, kw_only=True):
    """A pull worker (transport ``process``) of these kinds; ``issue_token`` makes it a token
    of its own (returned once: the home keeps only its digest)."""

    id: str
    kinds: list[str]
    issue_token: bool = False


class Registered(msgspec.Struct, kw_only=True):
    worker: dict[str, Any]
    token: str | None = None


class QuarantineBody(msgspec.Struct, kw_only=True):
    reason: str = "quarantined by an operator"


def home_of(request: Request[Any, Any, Any]) -> Home:
    home: Home = request.app.state.home
    return home


def desk(app: Litestar) -> PullDesk:
    """The server's pull desk, made on first use."""
    with _desk_lock:
        if "pull_desk" not in app.state:
            app.state.pull_desk = PullDesk(app.state.home)
        found: PullDesk = app.state.pull_desk
        return found


def end_long_polls_on_exit(app: Litestar) -> None:
    """At startup (main thread, under uvicorn's signal handlers): SIGTERM and Ctrl-C also end
    every pending claim at once, or the server would wait up to a long-poll's length for
    them before it stops."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def on_signal(signum: int, frame: Any, previous: Any = previous) -> None:
            desk(app).close()
            if callable(previous):
                previous(signum, frame)

        signal.signal(sig, on_signal)


def worker_of(home: Home, worker_id: str) -> WorkerState:
    try:
        return home.app.get_worker(worker_id)
    except LookupError as error:
        raise NotFoundException(detail=f"no worker {worker_id!r}") from error


def plain(worker: WorkerState) -> dict[str, Any]:
    shown_worker: dict[str, Any] = shown(worker, reveal=False)
    return shown_worker


def conflict(error: Exception) -> HTTPException:
    return HTTPException(status_code=409, detail=str(error))


def operated(home: Home, worker_id: str, operation: Callable[[], None]) -> dict[str, Any]:
    """An operator's step on a worker (404 if none, 409 if the step does not apply now),
    answered with the worker's state after it."""
    worker_of(home, worker_id)
    try:
        operation()
    except InvalidInputError as error:
        raise conflict(error) from error
    return plain(home.app.get_worker(worker_id))


@post(
    "/api/workers",
    status_code=201,
    responses=problems(400, 409),
    operation_id="ApiWorkersRegisterWorker",  # Litestar would name it "Asynccallable"
    tags=["workers"],
    sync_to_thread=True,
)
def register_worker(request: Request[Any, Any, Any], data: Registration) -> Registered:
    """Register (or register again) a pull worker; with ``issue_token``, a token of its own."""
    home = home_of(request)
    try:
        if data.issue_token:
            check_token_id(data.id)
        worker = register_process_worker(home, data.id, tuple(data.kinds))
        token = issue_worker_token(home.path, data.id) if data.issue_token else None
    except InvalidInputError as error:
        raise HTTPException(status_code=400, detail=str(error)) from error
    return Registered(worker=plain(worker), token=token)


@get("/api/workers", responses=problems(), tags=["workers"], sync_to_thread=True)
def list_workers(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    """Registered workers, by id (redacted)."""
    workers = home_of(request).views.current(WORKERS).workers.values()
    return [plain(worker) for worker in sorted(workers, key=lambda w: w.id)]


@get(
    "/api/workers/{worker_id:str}",
    opt=WORKER_SCOPED,
    responses=problems(404),
    tags=["workers"],
    sync_to_thread=True,
)
def show_worker(request: Request[Any, Any, Any], worker_id: str) -> dict[str, Any]:
    """One worker (its own token may read it)."""
    return plain(worker_of(home_of(request), worker_id))


@post(
    "/api/workers/{worker_id:str}/quarantine",
    status_code=200,
    responses=problems(400, 404, 409),
    tags=["workers"],
    sync_to_thread=True,
)
def quarantine_worker(
    request: Request[Any, Any, Any], worker_id: str, data: QuarantineBody
) -> dict[str, Any]:
    """Take the worker out of every decision until it is released."""
    home = home_of(request)
    return operated(home, worker_id, lambda: home.app.quarantine_worker(worker_id, data.reason))


@post(
    "/api/workers/{worker_id:str}/release",
    status_code=200,
    responses=problems(404, 409),
    tags=["workers"],
    sync_to_thread=True,
)
def release_worker(request: Request[Any, Any, Any], worker_id: str) -> dict[str, Any]:
    """Let a quarantined worker be chosen again."""
    home = home_of(request)
    return operated(home, worker_id, lambda: home.app.release_worker(worker_id))


@post(
    "/api/workers/{worker_id:str}/claim",
    status_code=200,
    opt=WORKER_SCOPED,
    responses=problems(400, 409),
    tags=["pull"],
)
async def claim(
    request: Request[Any, Any, Any],
    worker_id: str,
    wait: Annotated[int, Parameter(ge=0, le=MAX_WAIT_S)] = 0,
) -> Claim:
    """Claim an attempt leased to this worker that nobody started, waiting up to ``wait``
    seconds for one; ``job`` is null when none came. A waiting claim holds no server
    thread, so any number of workers may long-poll at once."""
    try:
        job = await desk(request.app).claim(worker_id, float(wait))
    except LostRacesError as error:
        raise conflict(error) from error
    if job is None:
        return Claim()
    tokens: WorkerTokens = request.app.state.worker_tokens
    return Claim(job=job, attempt_token=tokens.attempt_token(worker_id, job.id, job.attempt))


@post(
    "/api/workers/{worker_id:str}/heartbeat",
    status_code=200,
    opt=WORKER_SCOPED,
    responses=problems(400, 404, 409),
    tags=["pull"],
    sync_to_thread=True,
)
def heartbeat(request: Request[Any, Any, Any], worker_id: str, data: Beating | None = None) -> Beat:
    """The worker is alive (recorded: the heartbeat gate keeps choosing it); the leases of
    the attempts it names in ``running`` (and of those leased to it not yet claimed) are
    extended when less than half a term is left: ``extended`` says which, until when."""
    home = home_of(request)
    worker_of(home, worker_id)
    home.app.heartbeat(worker_id)
    running = {held.job_id: held.attempt for held in (data.running if data else [])}
    try:
        moved = desk(request.app).extend(worker_id, running)
    except LostRacesError as error:
        raise conflict(error) from error
    return Beat(
        worker_id=worker_id,
        last_seen=f"{home.app.get_worker(worker_id).last_seen:%Y-%m-%dT%H:%M:%S.%fZ}",
        extended=[
            Extended(job_id=job.id, attempt=job.attempt, lease_until=job.lease_until)
            for job in moved
            if job.lease_until is not None
        ],
    )


@post(
    "/api/workers/{worker_id:str}/result",
    status_code=200,
    opt=WORKER_SCOPED,
    responses=problems(400, 404, 409),
    tags=["pull"],
    sync_to_thread=True,
)
def result(request: Request[Any, Any, Any], worker_id: str, data: Report) -> Answer:
    """The outcome of the attempt this worker claimed, with its attempt token. Applied once:
    a repeated or late report is answered with what the log holds and changes nothing."""
    tokens: WorkerTokens = request.app.state.worker_tokens
    if not tokens.attempt_matches(worker_id, data.job_id, data.attempt, data.attempt_token):
        raise PermissionDeniedException(
            detail=f"the attempt token is not the one of attempt {data.attempt} of this worker"
        )
    problem = outcome_problem(data.outcome())
    if problem is not None:
        raise HTTPException(status_code=400, detail=problem)
    try:
        return desk(request.app).report(worker_id, data)
    except UnknownJobError as error:
        raise NotFoundException(detail=str(error)) from error
    except LostRacesError as error:
        raise conflict(error) from error


WORKER_ROUTES = [
    register_worker,
    list_workers,
    show_worker,
    quarantine_worker,
    release_worker,
    claim,
    heartbeat,
    result,
]
