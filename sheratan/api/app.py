"""The Litestar app over one home: auth, problem details, OpenAPI, limits, and the routes.

- ``/health`` answers without auth; every other route needs ``Authorization: Bearer …``
  (the home's token, read again when its file changes, so ``token rotate`` applies at once).
- Errors are RFC 9457 problem details (``application/problem+json``); each route declares
  the ones it can return (``problems(...)``), so the OpenAPI document lists them.
- OpenAPI 3.1 at ``/schema/openapi.json``, with the framework's docs pages under ``/schema``.
- CORS is closed unless origins are configured; request bodies are limited.

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
from litestar import Litestar, get
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from sheratan.api.tokens import matches, read_token, token_path
from sheratan.api.worker_tokens import WorkerTokens
from sheratan.home import Home

VERSION = metadata.version("sheratan")
#: Largest request body accepted (413 above it).
MAX_BODY_BYTES = 1024 * 1024
PUBLIC = {"public": True}


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem details body."""

    status: int
    title: str
    detail: str | None = None
    type: str = "about:blank"


PROBLEM_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Request body too large",
    429: "Too many requests",
}


def problems(*codes: int) -> dict[int, ResponseSpec]:
    """The problem responses a route declares (401 and 403 are implied by the bearer guard:
    no token, or a worker's token outside its own routes)."""
    return {
        code: ResponseSpec(
            data_container=Problem,
            description=PROBLEM_TITLES[code],
            media_type="application/problem+json",
        )
        for code in sorted({401, 403, *codes})
    }


def as_problem(error: HTTPException) -> ProblemDetailsException:
    """An HTTP error as problem details: the status's phrase as title, the error's message
    as detail (what to change), its headers kept (``Retry-After`` of a 429)."""
    status = error.status_code
    return ProblemDetailsException(
        status_code=status,
        title=PROBLEM_TITLES.get(status, HTTPStatus(status).phrase),
        detail=error.detail,
        headers=error.headers,
    )


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


class Health(msgspec.Struct):
    status: str
    version: str


@get("/health", opt=PUBLIC, sync_to_thread=False, security=[], tags=["service"])
def health() -> Health:
    """Liveness: answers without auth and reads nothing of the home."""
    return Health("ok", VERSION)


#: The route handlers of the API, module by module.
ROUTES: list[Any] = [health]

from sheratan.api.workers import WORKER_ROUTES, end_long_polls_on_exit  # noqa: E402 (its routes use problems())

ROUTES += WORKER_ROUTES


def create_app(home: Home, *, cors_origins: Sequence[str] = ()) -> Litestar:
    app = Litestar(
        route_handlers=ROUTES,
        guards=[bearer_guard],
        plugins=[
            ProblemDetailsPlugin(
                ProblemDetailsConfig(
                    enable_for_all_http_exceptions=True,
                    exception_to_problem_detail_map={HTTPException: as_problem},
                )
            )
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
    app.state.home = home
    app.state.tokens = TokenSource(home.path)
    app.state.worker_tokens = WorkerTokens(home.path)
    app.on_startup.append(end_long_polls_on_exit)
    return app
