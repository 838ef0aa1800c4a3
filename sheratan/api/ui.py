"""DecisionView at ``/ui``: one page, its script and its style, served from package data.

The page holds no data (anyone may load it); its script asks for the API token once, keeps
it in ``sessionStorage`` and sends it as a bearer token on every API call. Only these three
fixed files are served (no path from a request reaches the filesystem), each with a strict
Content-Security-Policy: scripts and styles from this origin only, nothing inline, no
frames, no third-party assets; the script inserts data with ``textContent`` only.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from litestar import Response, get

from sheratan.api.routing import PUBLIC

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _asset(name: str) -> bytes:
    return (resources.files("sheratan.api") / "static" / name).read_bytes()


def _serve(name: str, media_type: str) -> Response[bytes]:
    """Litestar adds ``; charset=utf-8`` to a text media type itself."""
    return Response(_asset(name), media_type=media_type, headers=HEADERS)


@get("/ui", opt=PUBLIC, security=[{}], media_type="text/html", tags=["ui"], sync_to_thread=False)
def ui_page() -> Response[bytes]:
    """The DecisionView page (no data in it; its script calls the API with the token)."""
    return _serve("index.html", "text/html")


@get(
    "/ui/app.js",
    opt=PUBLIC,
    security=[{}],
    media_type="text/javascript",
    tags=["ui"],
    sync_to_thread=False,
)
def ui_script() -> Response[bytes]:
    return _serve("app.js", "text/javascript")


@get(
    "/ui/app.css",
    opt=PUBLIC,
    security=[{}],
    media_type="text/css",
    tags=["ui"],
    sync_to_thread=False,
)
def ui_style() -> Response[bytes]:
    return _serve("app.css", "text/css")


UI_ROUTES = [ui_page, ui_script, ui_style]
