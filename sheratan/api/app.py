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
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from sheratan.api.routing import (  # noqa: F401 (route modules may import them from here)
    PROBLEM_TITLES,
    PUBLIC,
    Problem,
    problems,
)
from sheratan.api.tokens import matches, read_token, token_path
from sheratan.api.ui import UI_ROUTES
from sheratan.api.why import WHY_ROUTES
from sheratan.home import Home

VERSION = metadata.version("sheratan")
#: Largest request body accepted (413 above it).
MAX_BODY_BYTES = 1024 * 1024


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
    """Every route but the public ones needs the home's bearer token."""
    if handler.opt.get("public"):
        return
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    tokens: TokenSource = connection.app.state.tokens
    if scheme.lower() != "bearer" or not matches(given.strip(), tokens.current()):
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
ROUTES += WHY_ROUTES
ROUTES += UI_ROUTES


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
    return app
