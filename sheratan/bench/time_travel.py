"""``bench api --only views``: the slider's views as of positions in a 1M-event log.

Workload: ``events`` job events (five per job, ``sheratan.bench.audit.generate``, the fast
builder over ``sheratan.bench.store.encode_jobs``) in a fresh home. One request at the end
of the log (``time_travel.views_at``, as the server runs it) folds the log once and writes the
views' history snapshots; then ``views_at`` is timed at ten positions spread over the log
and at the position before each history snapshot (each of those folds a whole gap between
two snapshots: the history's worst case). The anchor of each figure is the same three
views folded in one pass from position 0 to the same position, without any snapshot: the
ratio says what the history saves.

Information: the history's bytes on disk per view, and the full jobs view's snapshot at the
end of the log (why the slider folds the compact job-status view instead).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from sheratan.bench.audit import generate
from sheratan.bench.figures import figure, timed
from sheratan.home import Home
from sheratan.time_travel import SLIDER_KINDS, views_at
from sheratan.views import JOB_STATUSES, JOBS, ViewKind, Views

#: Positions timed spread over the log (besides those before each snapshot).
POSITIONS = 10
TARGET_S = 1.0


def run_views_bench(
    *, events: int = 1_000_000, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The ``views_at`` figures (worst and median of the positions) and the history's bytes."""
    say = progress or (lambda _message: None)
    with tempfile.TemporaryDirectory(prefix="sheratan-bench-views-") as folder:
        root = Path(folder)
        say(f"views: generating a log of {events:,} events")
        generate(root / "home", events)
        home = Home(root / "home")
        try:
            return _measure(home, root, say)
        finally:
            home.close()
            shutil.rmtree(root / "home", ignore_errors=True)


def _measure(home: Home, root: Path, say: Callable[[str], None]) -> dict[str, Any]:
    last = home.ledger.last_position()
    say(f"views: the first request at {last:,} folds the log and writes the history")
    first_s, _ = timed(lambda: views_at(home, last))
    spread = {max(1, last * k // POSITIONS) for k in range(1, POSITIONS + 1)}
    before = {kept - 1 for kept in home.views.history(JOB_STATUSES) if kept > 1}
    positions = sorted(spread | before)
    seconds: dict[int, float] = {}
    for position in positions:
        seconds[position], answer = timed(partial(views_at, home, position))
        say(f"views: at {position:,}: {seconds[position]:.3f} s ({answer['jobs']['total']:,} jobs)")
    worst = max(positions, key=seconds.__getitem__)
    median_s = statistics.median(seconds.values())
    middle = min(positions, key=lambda p: abs(seconds[p] - median_s))
    # no snapshot to start from, and an interval past the log so none is written
    from_zero = Views(root / "anchor", home.ledger, interval=10 * last + 1)
    anchors: dict[int, float] = {}
    for position in {worst, middle}:
        say(f"views: anchor, the three views folded from position 0 to {position:,}")
        anchors[position], _ = timed(partial(from_zero.as_of_all, SLIDER_KINDS, position))
    history = {kind.name: _history_bytes(home, kind) for kind in SLIDER_KINDS}
    say("views: the full jobs view at the end of the log, for its snapshot's size")
    jobs_snapshot = len(JOBS.dump(home.views.as_of(JOBS, last)))
    anchor = "fold of the same views from position 0"
    return {
        "figures": {
            "views_at_worst_s": figure(
                seconds[worst], "s", anchor, anchors[worst], f"<= {TARGET_S:g} s",
                seconds[worst] <= TARGET_S, position=worst,
            ),
            "views_at_median_s": figure(
                seconds[middle], "s", anchor, anchors[middle], f"<= {TARGET_S:g} s",
                seconds[middle] <= TARGET_S, position=middle,
            ),
        },
        "views": {
            "events": last,
            "seconds_at": [{"position": p, "seconds": s} for p, s in seconds.items()],
            "first_request_s": first_s,
            "history": history,
            "history_bytes": sum(h["bytes"] for h in history.values()),
            "jobs_view_snapshot_bytes": jobs_snapshot,
        },
    }  # fmt: skip


def _history_bytes(home: Home, kind: ViewKind[Any]) -> dict[str, Any]:
    """How many history snapshots the kind keeps, where, and their bytes on disk."""
    folder = home.path / "projections" / "history" / kind.name
    sizes = {int(p.stem): p.stat().st_size for p in folder.glob("*.msgpack")}
    return {"positions": sorted(sizes), "bytes": sum(sizes.values())}
