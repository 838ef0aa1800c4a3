"""The WHY-API: read-only, redacted answers about decisions, the event stream, the audit.

The same services as ``sheratan why``, ``replay --counterfactual``, ``events tail --follow``
and ``audit verify`` answer here. Nothing a request sends names a file: parameters are ids,
intents, windows and numbers, and every answer passes through the analytics redaction.
Computations are bounded (resamples and decisions capped) so no request runs for long.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import anyio.to_thread
import msgspec
from litestar import Request, get
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from sheratan.analytics.why import Why, WhyNotFoundError, parse_window
from sheratan.api.analytics_cache import SharedAnalytics
from sheratan.api.routing import home_of, problems
from sheratan.audit.service import latest_checkpoint
from sheratan.home import Home
from sheratan.replay.counterfactual import DEFAULT_INTENT
from sheratan.replay.estimators import ESTIMATORS
from sheratan.replay.service import estimate_at, estimate_counterfactual, estimate_regression
from sheratan.reveal import redacted_line, shown
from sheratan.time_travel import views_at

#: The longest log the regression route re-scores in one request.
MAX_FOLD = 200_000
#: Most bootstrap resamples one request may ask for.
MAX_RESAMPLES = 2000
#: Most recent scored decisions a counterfactual request estimates over (and the default).
MAX_DECISIONS = 20_000
#: Most traces one listing returns.
MAX_TRACES = 1000
#: Largest scoring weight a regression request may set.
MAX_WEIGHT = 100.0
#: Events sent per read of the log (a long backlog streams in batches).
EVENT_BATCH = 500
#: Seconds one wait for a commit lasts, so a stream notices a gone client within it.
WAIT_STEP_S = 1.0
#: Quiet seconds after which the stream sends a comment (keeps proxies from closing it).
KEEPALIVE_S = 15.0

Answer = dict[str, Any]
TAGS = ["why"]
Text = Annotated[str | None, Parameter(max_length=200)]
Key = Annotated[str, Parameter(max_length=200)]


@contextmanager
def problems_of_input() -> Iterator[None]:
    """Unknown ids are 404, bad values (a window, a policy, an action) 400."""
    try:
        yield
    except WhyNotFoundError as error:
        raise HTTPException(status_code=404, detail=str(error)) from None
    except ValueError as error:
        raise HTTPException(status_code=400, detail=str(error)) from None
    except OverflowError:  # a window or a time past what dates can hold
        raise HTTPException(status_code=400, detail="a date or window out of range") from None


@contextmanager
def answering(state: State) -> Iterator[Why]:
    """A Why over the server's session of the log as it is now, its errors as problems."""
    shared: SharedAnalytics = state.analytics
    with problems_of_input(), shared.current() as analytics:
        yield Why(analytics)


def _window(text: str | None) -> Any:
    with problems_of_input():
        return None if text is None else parse_window(text)


@get("/api/why/latest", responses=problems(400, 404), tags=TAGS, sync_to_thread=True)
def why_latest(request: Request[Any, Any, Any], intent: Text = None) -> Answer:
    """The most recent decision (of ``intent``)."""
    with answering(request.app.state) as why:
        return why.latest(intent)


@get("/api/why/traces", responses=problems(400), tags=TAGS, sync_to_thread=True)
def why_traces(
    request: Request[Any, Any, Any],
    intent: Text = None,
    worker: Text = None,
    status: Text = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_TRACES)] = 100,
) -> Answer:
    """The most recent traces, newest first, filtered by intent, worker, status and time."""
    with answering(request.app.state) as why:
        return why.traces(
            intent=intent, worker=worker, status=status, since=since, until=until, limit=limit
        )


@get("/api/why/trace/{trace_id:uuid}", responses=problems(400, 404), tags=TAGS, sync_to_thread=True)
def why_trace(request: Request[Any, Any, Any], trace_id: UUID) -> Answer:
    """Every node of a trace (a node id finds its trace)."""
    with answering(request.app.state) as why:
        return why.trace(str(trace_id))


@get("/api/why/job/{job_id:uuid}", responses=problems(400, 404), tags=TAGS, sync_to_thread=True)
def why_job(request: Request[Any, Any, Any], job_id: UUID) -> Answer:
    """A job as the log has it (payload redacted) and every decision on it."""
    with answering(request.app.state) as why:
        return why.job(str(job_id))


@get("/api/why/stats", responses=problems(400), tags=TAGS, sync_to_thread=True)
def why_stats(request: Request[Any, Any, Any], intent: Text = None, window: Text = None) -> Answer:
    """Count, success rate, mean score, latency and cost percentiles, per action, failures."""
    span = _window(window)
    with answering(request.app.state) as why:
        return why.stats(intent, span)


@get("/api/why/drift", responses=problems(400), tags=TAGS, sync_to_thread=True)
def why_drift(request: Request[Any, Any, Any], window: Text = "1h", intent: Text = None) -> Answer:
    """Latency and cost per (intent, action) per window against the baseline."""
    span = _window(window or "1h")
    with answering(request.app.state) as why:
        return why.drift(span, intent=intent)


@get("/api/why/counterfactual", responses=problems(400), tags=TAGS, sync_to_thread=True)
def why_counterfactual(
    request: Request[Any, Any, Any],
    policy: Key,
    estimator: Annotated[str, Parameter(pattern="^(" + "|".join(ESTIMATORS) + ")$")] = "dr",
    confidence: Annotated[float, Parameter(gt=0, lt=1)] = 0.95,
    resamples: Annotated[int, Parameter(ge=1, le=MAX_RESAMPLES)] = 500,
    seed: int = 0,
    intent: Key = DEFAULT_INTENT,
    last: Annotated[int, Parameter(ge=2, le=MAX_DECISIONS)] = MAX_DECISIONS,
) -> Answer:
    """A policy's off-policy estimate over the logged decisions (recorded nowhere)."""
    with problems_of_input():
        return _clean(
            estimate_counterfactual(
                home_of(request.app.state),
                policy,
                estimator=estimator,
                confidence=confidence,
                resamples=resamples,
                seed=seed,
                intent=intent,
                last=last,
            )
        )


@get(
    "/api/why/counterfactual/{node_id:uuid}",
    responses=problems(400, 404),
    tags=TAGS,
    sync_to_thread=True,
)
def why_counterfactual_at(
    request: Request[Any, Any, Any],
    node_id: UUID,
    action: Annotated[str, Parameter(max_length=200)],
) -> Answer:
    """One decision's estimated outcome had ``action`` been chosen (recorded nowhere)."""
    with problems_of_input():
        return _clean(estimate_at(home_of(request.app.state), str(node_id), action))


def _clean(answer: Answer) -> Answer:
    return shown(answer, reveal=False)  # type: ignore[no-any-return]


@get("/api/why/regression", responses=problems(400), tags=TAGS, sync_to_thread=True)
def why_regression(
    request: Request[Any, Any, Any],
    wS: Annotated[float | None, Parameter(ge=0, le=MAX_WEIGHT)] = None,
    wQ: Annotated[float | None, Parameter(ge=0, le=MAX_WEIGHT)] = None,
    wR: Annotated[float | None, Parameter(ge=0, le=MAX_WEIGHT)] = None,
    wL: Annotated[float | None, Parameter(ge=0, le=MAX_WEIGHT)] = None,
    wC: Annotated[float | None, Parameter(ge=0, le=MAX_WEIGHT)] = None,
    wK: Annotated[float | None, Parameter(ge=0, le=MAX_WEIGHT)] = None,
    fail_if_drop: float | None = None,
) -> Answer:
    """History re-scored under new weights (the shipped ones where not given), recorded
    nowhere; logs longer than ``MAX_FOLD`` events are refused (use ``replay --regression``).
    The weights' parameters carry the names of policies/scoring.json, so a refusal names
    them as the client wrote them."""
    home = home_of(request.app.state)
    given = {"wS": wS, "wQ": wQ, "wR": wR, "wL": wL, "wC": wC, "wK": wK}
    if home.ledger.last_position() > MAX_FOLD:
        detail = f"the log is longer than {MAX_FOLD} events; run sheratan replay --regression"
        raise HTTPException(status_code=400, detail=detail)
    weights = {k: v for k, v in given.items() if v is not None}
    with problems_of_input():
        return _clean(estimate_regression(home, weights=weights, fail_if_drop=fail_if_drop))


@get("/api/audit", responses=problems(), tags=["audit"], sync_to_thread=True)
def audit(request: Request[Any, Any, Any]) -> Answer:
    """The hash chain verified from the files, and the latest signed checkpoint."""
    home = home_of(request.app.state)
    result = home.verify()
    return {
        "ok": result.ok,
        "chain": result.summary(),
        "latest_checkpoint": latest_checkpoint(home.path),
    }


@get("/api/events", responses=problems(400), media_type="text/event-stream", tags=["events"])
async def events(
    request: Request[Any, Any, Any],
    start: Annotated[int | None, Parameter(query="from", ge=1)] = None,
    until: Annotated[int | None, Parameter(ge=1)] = None,
) -> ServerSentEvent:
    """The log as server-sent events (``id`` is the position), each redacted, from ``from``
    (default: only new events); it follows the log until the client goes, or up to
    ``until`` when given."""
    return ServerSentEvent(_stream(home_of(request.app.state), start, until))


async def _stream(
    home: Home, start: int | None, until: int | None
) -> AsyncIterator[ServerSentEventMessage]:
    ledger = home.log
    with home.waker() as waker:  # register, then read, then wait: no commit is missed
        position = start or ledger.last_position() + 1
        quiet = 0.0
        while until is None or position <= until:
            last = min(ledger.last_position(), position + EVENT_BATCH - 1)
            if until is not None:
                last = min(last, until)
            if last >= position:
                batch = await anyio.to_thread.run_sync(_read, home, position, last)
                for pos, line in batch:
                    yield ServerSentEventMessage(data=line, event="event", id=str(pos))
                position = last + 1
                quiet = 0.0
                continue
            if not await anyio.to_thread.run_sync(waker.wait, WAIT_STEP_S):
                quiet += WAIT_STEP_S
                if quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield ServerSentEventMessage(comment="keepalive")


def _read(home: Home, first: int, last: int) -> list[tuple[int, str]]:
    return [
        (pos, msgspec.json.encode(redacted_line(raw)).decode())
        for pos, raw in home.log.lines(first, last)
    ]


@get("/api/views", responses=problems(400), tags=["views"], sync_to_thread=True)
def views(request: Request[Any, Any, Any], at: Annotated[int, Parameter(ge=1)]) -> Answer:
    """Jobs by status, priors and baselines as they were right after position ``at`` (time
    travel; past the end: the log as it is). Served from the views' saved snapshots along the
    log, so a request folds at most about one snapshot interval of events."""
    with problems_of_input():
        return views_at(home_of(request.app.state), at)


WHY_ROUTES = [
    why_latest,
    why_traces,
    why_trace,
    why_job,
    why_stats,
    why_drift,
    why_counterfactual,
    why_counterfactual_at,
    why_regression,
    audit,
    events,
    views,
]
