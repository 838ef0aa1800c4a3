"""The Litestar app over one home: auth, problem details, OpenAPI, limits, and the routes.

- ``/health`` answers without auth; every other route needs ``Authorization: Bearer …``
  (the home's token, read again when its file changes, so ``token rotate`` applies at once).
- Errors are RFC 9457 problem details (``application/problem+json``); each route declares
  the ones it can return (``problems(...)``), so the OpenAPI document lists them.
- OpenAPI 3.1 at ``/schema/openapi.json``, with the framework's docs pages under ``/schema``.
- CORS is closed unless origins are configured; request bodies are limited; writes are
  rate-limited per client (``sheratan.api.limits``: 429 with ``Retry-After``).
- The services' errors map to statuses in one place (``SERVICE_ERRORS``): bad input 400, an
  unknown id 404, a state or idempotency conflict 409, with the CLI's one-line message.

Routes live in modules of their own and are listed in ``ROUTES``; this module wires them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from http import HTTPStatus
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec
from eventsourcing.persistence import IntegrityError
from litestar import Litestar, get
from litestar._openapi.schema_generation import SchemaCreator
from litestar._openapi.schema_generation.plugins import StructSchemaPlugin
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, Schema, SecurityScheme
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope
from litestar.typing import FieldDefinition

from sheratan.admission import Admission
from sheratan.api.accounts import ACCOUNT_ROUTES
from sheratan.api.analytics_cache import SharedAnalytics
from sheratan.api.jobs import JOB_ROUTES
from sheratan.api.limits import WriteLimiter, write_limit_guard
from sheratan.api.missions import MISSION_ROUTES
from sheratan.api.routing import PROBLEM_TITLES, PUBLIC
from sheratan.api.system import SYSTEM_ROUTES
from sheratan.api.tokens import matches, read_token, token_path
from sheratan.api.ui import UI_ROUTES
from sheratan.api.why import WHY_ROUTES
from sheratan.api.worker_tokens import WorkerTokens
from sheratan.api.workers import WORKER_ROUTES, end_long_polls_on_exit
from sheratan.app import (
    AlreadyExistsError,
    GateRefusedError,
    IdempotencyConflictError,
    NotFoundError,
)
from sheratan.decide.gates import JobGates
from sheratan.decide.policy import GatePolicy, load_gates
from sheratan.home import Home
from sheratan.inputs import InvalidInputError
from sheratan.lifecycle import IllegalTransitionError
from sheratan.limits import BackpressureError, Limits, load_limits
from sheratan.system_state import IllegalSystemTransitionError

VERSION = metadata.version("sheratan")
#: Largest request body accepted (413 above it).
MAX_BODY_BYTES = 1024 * 1024


def as_problem(error: HTTPException) -> ProblemDetailsException:
    """An HTTP error as problem details: the status's phrase as title, the error's message
    as detail (what to change; for a body or parameter of the wrong shape, which one and
    why), its headers kept (``Retry-After`` of a 429)."""
    status = error.status_code
    detail = error.detail
    if isinstance(error.extra, list) and error.extra:
        first = error.extra[0]
        if isinstance(first, dict) and "message" in first:
            where = f"{first['key']}: " if first.get("key") else ""
            detail = f"{where}{first['message']}"
    return ProblemDetailsException(
        status_code=status,
        title=PROBLEM_TITLES.get(status, HTTPStatus(status).phrase),
        detail=detail,
        headers=error.headers,
    )


#: The services' errors as HTTP statuses; the message is the one the CLI prints.
SERVICE_ERRORS: dict[type[Exception], int] = {
    InvalidInputError: 400,
    NotFoundError: 404,
    IdempotencyConflictError: 409,
    IllegalTransitionError: 409,
    IllegalSystemTransitionError: 409,
    AlreadyExistsError: 409,
    IntegrityError: 409,
}


def gate_problem(error: GateRefusedError) -> ProblemDetailsException:
    """A job a gate refused at creation: 403, naming the gate and its reason."""
    return ProblemDetailsException(
        status_code=403,
        title=PROBLEM_TITLES[403],
        detail=str(error),
        extra={"gate": error.gate, "reason": error.reason},
    )


def backpressure_problem(error: BackpressureError) -> ProblemDetailsException:
    """A job refused by a creation limit (a full queue, a busy source): 429 with
    ``Retry-After``; nothing was recorded."""
    return ProblemDetailsException(
        status_code=429,
        title=PROBLEM_TITLES[429],
        detail=str(error),
        headers={"Retry-After": str(error.retry_after_s)},
    )


def service_problem(error: Exception) -> ProblemDetailsException:
    """A service's refusal as problem details (the most specific class's status)."""
    status = next(SERVICE_ERRORS[kind] for kind in type(error).__mro__ if kind in SERVICE_ERRORS)
    detail = str(error)
    if isinstance(error, IntegrityError):
        detail = "another request changed this record at the same time: try again"
    return as_problem(HTTPException(status_code=status, detail=detail))


class TokenSource:
    """The home's token, read again whenever its file changes (``token rotate``)."""

    def __init__(self, home: Path) -> None:
        self.path = token_path(home)
        self.home = home
        self._stamp: tuple[int, int] | None = None
        self._token = ""

    def current(self) -> str:
        stat = os.stat(self.path)
        stamp = (stat.st_mtime_ns, stat.st_ino)
        if stamp != self._stamp:
            self._token = read_token(self.home)
            self._stamp = stamp
        return self._token


def bearer_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Every route but the public ones needs a bearer token: the home's anywhere, a worker's
    (``sheratan.api.worker_tokens``) only on that worker's own routes (403 elsewhere)."""
    if handler.opt.get("public"):
        return
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    given = given.strip()
    tokens: TokenSource = connection.app.state.tokens
    if scheme.lower() == "bearer" and given:
        if matches(given, tokens.current()):
            return
        workers: WorkerTokens = connection.app.state.worker_tokens
        owner = workers.owner(given)
        if owner is not None:
            if (
                handler.opt.get("worker_scoped")
                and connection.path_params.get("worker_id") == owner
            ):
                return
            raise PermissionDeniedException(
                detail=f"the token of worker {owner} acts only on that worker's own routes"
            )
    raise NotAuthorizedException(detail="a valid bearer token is required")


async def honest_allow(message: Message, scope: Scope) -> None:
    """Answer OPTIONS with every method of the path. Litestar 2.25 builds a path's OPTIONS
    answer with the methods of the first handler registered there (``GET /api/jobs`` was
    missing from ``Allow`` beside ``POST``)."""
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    template = scope.get("path_template")
    for route in scope["litestar_app"].routes:
        if isinstance(route, HTTPRoute) and route.path == template:
            MutableScopeHeaders.from_message(message)["allow"] = ", ".join(sorted(route.methods))


class ClosedStructs(StructSchemaPlugin):
    """A body Struct that refuses unknown fields says so in OpenAPI
    (``additionalProperties: false``), so clients and schemathesis know extras are refused."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return super().is_plugin_supported_field(field_definition) and bool(
            field_definition.type_.__struct_config__.forbid_unknown_fields
        )

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema


class Health(msgspec.Struct):
    status: str
    version: str


@get("/health", opt=PUBLIC, sync_to_thread=False, security=[{}], tags=["service"])
def health() -> Health:
    """Liveness: answers without auth and reads nothing of the home."""
    return Health("ok", VERSION)


#: The route handlers of the API, module by module.
ROUTES: list[Any] = [health]
ROUTES += MISSION_ROUTES
ROUTES += JOB_ROUTES
ROUTES += WHY_ROUTES
ROUTES += UI_ROUTES
ROUTES += WORKER_ROUTES
ROUTES += ACCOUNT_ROUTES
ROUTES += SYSTEM_ROUTES


def create_app(
    home: Home,
    *,
    cors_origins: Sequence[str] = (),
    limits: Limits | None = None,
    gates: GatePolicy | None = None,
    workspace: Path | None = None,
) -> Litestar:
    """The API of one home. ``gates`` and ``workspace`` are those the dispatchers use (the
    defaults: policies/gates.json and the current folder): a job their job-only gates refuse
    is refused at creation."""
    services: dict[type[Exception], Any] = dict.fromkeys(SERVICE_ERRORS, service_problem)
    services[GateRefusedError] = gate_problem
    services[BackpressureError] = backpressure_problem
    app = Litestar(
        route_handlers=ROUTES,
        guards=[bearer_guard, write_limit_guard],
        before_send=[honest_allow],
        plugins=[
            ClosedStructs(),
            ProblemDetailsPlugin(
                ProblemDetailsConfig(
                    enable_for_all_http_exceptions=True,
                    exception_to_problem_detail_map={HTTPException: as_problem, **services},
                )
            ),
        ],
        cors_config=CORSConfig(allow_origins=list(cors_origins)) if cors_origins else None,
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="Sheratan",
            version=VERSION,
            path="/schema",
            security=[{"BearerToken": []}],
            components=Components(
                security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer")}
            ),
        ),
        debug=False,
    )
    _ = home.app, home.views  # made once here, before the handler threads share them
    app.state.home = home
    app.state.tokens = TokenSource(home.path)
    limits = limits or load_limits()
    app.state.writes = WriteLimiter(limits.writes)
    app.state.worker_tokens = WorkerTokens(home.path)
    job_gates = JobGates(gates or load_gates(), (workspace or Path.cwd()).resolve())
    app.state.admission = Admission(home, limits, job_gates)
    app.state.analytics = SharedAnalytics(home)
    app.on_startup.append(end_long_polls_on_exit)
    app.on_shutdown.append(app.state.analytics.close)
    return app
