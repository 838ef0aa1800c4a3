"""What a route declares (its RFC 9457 problem responses, that it is public, the limits of
its body's fields) and the home it serves.

Apart from the app, so route modules import it without importing the app that lists them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import KwargDefinition

if TYPE_CHECKING:
    from sheratan.home import Home

#: A route's ``opt`` that lets it answer without the bearer token (``bearer_guard``).
PUBLIC = {"public": True}


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem details body."""

    status: int
    title: str
    detail: str | None = None
    type: str = "about:blank"
    #: A job refused at creation (403): the gate that refused it and its reason.
    gate: str | None = None
    reason: str | None = None


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


#: A limit on a body field, shown in the OpenAPI document but not enforced by msgspec: the
#: services check every limit (``sheratan.inputs``), so the API refuses with the CLI's message.
Rule = KwargDefinition


def home_of(state: State) -> Home:
    """The home a handler serves (``state`` is the app's, which Litestar hands a handler)."""
    home: Home = state.home
    return home
