"""``bench api``'s page figure: DecisionView's first render with 1,000 decisions in the log.

A home gets 1,000 noop jobs, each dispatched to a local worker (one decision each), and is
served; headless Chromium (Debian's ``chromium`` driven by Playwright, as the page's test
does) opens ``/ui`` with the token already in the tab's session, and the clock stops when
the traces list is drawn. The figure is the render right after the log moved (a worker's
heartbeat is recorded before each load), so the server opens a new analytics session for
it; the render on a log at rest (the session reused) is reported beside it. The anchor is
the same page without a token: the login form, that is the page's own HTML, CSS and script
with no data.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from sheratan.api.tokens import read_token
from sheratan.bench.figures import figure
from sheratan.bench.serving import serve_command, server_process
from sheratan.dispatch.service import EngineConfig, dispatch
from sheratan.home import Home, init_home

CHROMIUM = Path("/usr/bin/chromium")
TARGET_MS = 1000.0
#: The page's own session key for the token (sheratan/api/static/app.js).
TOKEN_KEY = "sheratan-token"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


def missing_browser() -> str | None:
    """Why the figure cannot be measured here, or None."""
    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        return "Debian's chromium is not installed (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


def run_first_render(
    root: Path, *, decisions: int, loads: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """The median milliseconds from navigation to the drawn traces list, over ``loads``."""
    from playwright.sync_api import sync_playwright

    home = root / "page-home"
    init_home(home)
    opened = Home.open(home)
    try:
        opened.app.register_worker("w1", ("noop",), "local")
        say(f"page: {decisions:,} jobs, one decision each")
        for n in range(decisions):
            opened.app.create_job("noop", {"n": n})
        dispatch(opened, EngineConfig.load(workspace=root))
    finally:
        opened.close()
    token = read_token(home)
    say(f"page: {loads} first renders of /ui in headless Chromium")
    with (
        server_process(serve_command(home), port_option=True) as url,
        sync_playwright() as playwright,
        closing(Home.open(home)) as mover,
    ):
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS
        )
        page = f"{url}/ui"
        try:
            shell = [_render(browser, page, None, "#login") for _ in range(loads)]
            at_rest = [_render(browser, page, token, "#traces li") for _ in range(loads)]
            moved = []
            for _ in range(loads):
                mover.app.heartbeat("w1")
                moved.append(_render(browser, page, token, "#traces li"))
        finally:
            browser.close()
    drawn, anchor = statistics.median(moved), statistics.median(shell)
    return figure(
        drawn,
        "ms",
        "the page without data (login form)",
        anchor,
        f"<= {TARGET_MS:g} ms",
        drawn <= TARGET_MS,
        at_rest_ms=statistics.median(at_rest),
        decisions=decisions,
        loads=loads,
    )


def _render(browser: Any, url: str, token: str | None, drawn: str) -> float:
    """Milliseconds from navigation until ``drawn`` is visible, in a fresh context."""
    context = browser.new_context()
    try:
        if token is not None:
            setting = f"sessionStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(token)})"
            context.add_init_script(setting)
        page = context.new_page()
        began = time.perf_counter()
        page.goto(url)
        page.locator(drawn).first.wait_for(state="visible", timeout=60_000)
        return (time.perf_counter() - began) * 1000
    finally:
        context.close()
