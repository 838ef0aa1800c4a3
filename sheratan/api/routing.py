"""What a route declares: its RFC 9457 problem responses, or that it is public.

Apart from the app, so route modules import it without importing the app that lists them."""

from __future__ import annotations

import msgspec
from litestar.openapi import ResponseSpec

#: A route's ``opt`` that lets it answer without the bearer token (``bearer_guard``).
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
    """The problem responses a route declares (401 is implied by the bearer guard)."""
    return {
        code: ResponseSpec(
            data_container=Problem,
            description=PROBLEM_TITLES[code],
            media_type="application/problem+json",
        )
        for code in sorted({401, *codes})
    }
