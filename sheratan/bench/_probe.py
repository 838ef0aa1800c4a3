"""Measurements that need a fresh process: opening a log, rebuild memory and time.

Run as ``python -m sheratan.bench._probe '<json>'``; prints one JSON object on stdout.
The store benchmark starts it; it is not a user-facing command.

Rebuilds are the product's own path: ``sheratan.views.Views(home, ledger)`` with
``rebuild(JOBS)`` or ``as_of(JOBS, position)``, on a ``Ledger`` opened first (with its sidecar
index). The anchor is the library path, ``library_fold``.
"""

from __future__ import annotations

import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from projections.jobs import JobsView, project_job
from sheratan.codec import MsgspecMapper
from sheratan.store.index import LogIndex
from sheratan.store.ledger import Ledger
from sheratan.store.recorders import JsonlApplicationRecorder
from sheratan.views import JOBS, Views


def memory_kib() -> dict[str, int]:
    """This process's resident set size now and at its peak (VmRSS, VmHWM), in KiB."""
    out: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def _reset_peak() -> bool:
    """Set this process's peak RSS (VmHWM) to its current RSS, so a later peak is the fold's."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def library_fold(recorder: Any, mapper: Any, last: int, page: int = 1000) -> JobsView:
    """The anchor: select_notifications pages, MsgspecMapper.to_domain_event, JobsView.apply."""
    view = JobsView()
    apply: Callable[[int, Any], None] = view.apply
    to_domain = mapper.to_domain_event
    position = 0
    while position < last:
        notifications = recorder.select_notifications(position + 1, min(page, last - position))
        if not notifications:
            break
        for notification in notifications:
            apply(notification.id, to_domain(notification))
        position = notifications[-1].id
    return view


def _open(home: Path) -> tuple[Ledger, Views, float]:
    """The ledger (with its sidecar index) and the product's views of ``home``, timed."""
    t0 = time.perf_counter()
    ledger = Ledger(home)
    views = Views(home, ledger)
    return ledger, views, time.perf_counter() - t0


def open_log(args: dict[str, Any]) -> dict[str, Any]:
    """Open the log (timed); optionally time getting random jobs from it.

    ``sidecar_s`` is the anchor of the open's integrity checks: loading the sidecar index
    alone, which is what an open of a log with nothing new at its tail did before the
    checks (seals, file stamps, checkpoint chain) existed. With ``touch_active`` the active
    segment's stamp is changed first, as another writer's append would, so the open
    re-checks the active segment's indexed bytes.
    """
    home = Path(args["home"])
    if args.get("touch_active"):
        os.utime(sorted((home / "events").glob("*.jsonl"))[-1])
    started = time.perf_counter()
    ledger = Ledger(home)
    open_s = time.perf_counter() - started
    assert ledger.damage is None, ledger.damage
    started = time.perf_counter()
    LogIndex.load(ledger.sidecar_path, ledger.dir)
    sidecar_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "open_s": open_s,
        "sidecar_s": sidecar_s,
        "events": ledger.index.last_pos,
    }
    samples = int(args.get("get_jobs", 0))
    if samples:
        recorder = JsonlApplicationRecorder(ledger)
        mapper = MsgspecMapper()
        to_domain = mapper.to_domain_event
        streams = sorted(ledger.index.streams)
        ids = [UUID(s) for s in random.Random(args.get("seed", 0)).sample(streams, samples)]
        times_ms = []
        for job_id in ids:
            t0 = time.perf_counter()
            stored = recorder.select_events(job_id)
            job = project_job(None, [to_domain(s) for s in stored])
            times_ms.append((time.perf_counter() - t0) * 1000)
            assert job is not None and job.id == job_id, job_id
        result["get_ms"] = times_ms
        result["ids"] = [str(i) for i in ids]
    return result


def verify(args: dict[str, Any]) -> dict[str, Any]:
    """Fold a prefix both ways (library path and the product's Views.as_of); compare views."""
    home = Path(args["home"])
    upto = int(args["events"])
    ledger, views, _ = _open(home)
    recorder = JsonlApplicationRecorder(ledger)
    t0 = time.perf_counter()
    reference = library_fold(recorder, MsgspecMapper(), upto)
    library_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    product = views.as_of(JOBS, upto)
    product_s = time.perf_counter() - t0
    return {
        "events": upto,
        "library_s": library_s,
        "product_s": product_s,
        "jobs": len(reference.jobs),
        "queued": len(reference.queue()),
        "equal_position": product.position == reference.position,
        "equal_jobs": product.jobs == reference.jobs,
        "equal_queue": product.queue() == reference.queue(),
    }


def rebuild_memory(args: dict[str, Any]) -> dict[str, Any]:
    """RSS before, peak and after the product's ``Views.as_of(JOBS, upto)``.

    "Before" is taken after the ledger is open (its index is the same whatever ``upto`` is),
    so the figure is the fold's alone; the open's own growth is reported beside it.
    """
    start = memory_kib()
    ledger, views, _ = _open(Path(args["home"]))
    ledger.last_position()
    gc.collect()
    peak_reset = _reset_peak()
    before = memory_kib()
    upto = int(args["upto"]) if args.get("upto") is not None else ledger.last_position()
    t0 = time.perf_counter()
    view = views.as_of(JOBS, upto)
    seconds = time.perf_counter() - t0
    after = memory_kib()
    return {
        "events": view.position,
        "jobs": len(view.jobs),
        "seconds": seconds,
        "rss_start_kib": start["VmRSS"],
        "rss_before_kib": before["VmRSS"],
        "peak_before_kib": before["VmHWM"],
        "peak_reset": peak_reset,
        "rss_peak_kib": after["VmHWM"],
        "rss_after_kib": after["VmRSS"],
    }


def rebuild_time(args: dict[str, Any]) -> dict[str, Any]:
    """Seconds per ``Views.rebuild(JOBS)`` (fold from zero, save, swap), ``repeats`` times."""
    home = Path(args["home"])
    _, views, open_s = _open(home)
    times = []
    view: JobsView | None = None
    for _ in range(int(args["repeats"])):
        view = None  # let the previous view go before timing the next
        gc.collect()
        t0 = time.perf_counter()
        view = views.rebuild(JOBS)
        times.append(time.perf_counter() - t0)
    assert view is not None
    saved = views.dir / f"{JOBS.name}.msgpack"
    return {
        "events": view.position,
        "jobs": len(view.jobs),
        "open_s": open_s,
        "seconds": times,
        "median_s": statistics.median(times),
        "saved_bytes": saved.stat().st_size,
    }


def rebuild_breakdown(args: dict[str, Any]) -> dict[str, Any]:
    """Where a rebuild's time goes, per event, with the GC off as in ``Views._fold``.

    Three passes over the whole log: the ledger's lines only (read and split), then the
    product's reader (read, split, decode), then ``Views.as_of`` (all that plus the fold);
    decode and fold are the differences. Each pass is the best of ``repeats``.
    """
    ledger, views, _ = _open(Path(args["home"]))
    last = ledger.last_position()

    def lines() -> None:
        for _ in ledger.lines(1, last):
            pass

    def decoded() -> None:
        for _ in views.reader.events(ledger, 1, last):
            pass

    def folded() -> None:
        views.as_of(JOBS, last)

    best: dict[str, float] = {}
    for name, run in (("read_split", lines), ("read_decode", decoded), ("as_of", folded)):
        times = []
        for _ in range(int(args.get("repeats", 1))):
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                run()
                times.append(time.perf_counter() - t0)
            finally:
                gc.enable()
        best[name] = min(times)
    per_event = 1e9 / last
    return {
        "events": last,
        "seconds": best,
        "ns_per_event": {
            "read_split": best["read_split"] * per_event,
            "decode": (best["read_decode"] - best["read_split"]) * per_event,
            "fold": (best["as_of"] - best["read_decode"]) * per_event,
            "total": best["as_of"] * per_event,
        },
    }


OPS = {
    "open": open_log,
    "verify": verify,
    "rebuild_memory": rebuild_memory,
    "rebuild_time": rebuild_time,
    "rebuild_breakdown": rebuild_breakdown,
}


def main(argv: list[str]) -> None:
    args = json.loads(argv[0])
    result = OPS[args["op"]](args)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
