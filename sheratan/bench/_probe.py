"""Measurements that need a fresh process: opening a log, rebuild memory and time.

Run as ``python -m sheratan.bench._probe '<json>'``; prints one JSON object on stdout.
The store benchmark starts it; it is not a user-facing command.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from projections.jobs import project_job
from sheratan.bench.rebuild import library_fold, rebuild_jobs_view
from sheratan.codec import MsgspecMapper
from sheratan.store.ledger import Ledger
from sheratan.store.recorders import JsonlApplicationRecorder


def memory_kib() -> dict[str, int]:
    """This process's resident set size now and at its peak (VmRSS, VmHWM), in KiB."""
    out: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def open_log(args: dict[str, Any]) -> dict[str, Any]:
    """Open the log (timed); optionally time getting random jobs from it."""
    started = time.perf_counter()
    ledger = Ledger(Path(args["home"]))
    open_s = time.perf_counter() - started
    result: dict[str, Any] = {"open_s": open_s, "events": ledger.index.last_pos}
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
    """Fold a prefix both ways (library path and fast reader) and compare the views."""
    home = Path(args["home"])
    upto = int(args["events"])
    ledger = Ledger(home)
    recorder = JsonlApplicationRecorder(ledger)
    t0 = time.perf_counter()
    reference = library_fold(recorder, MsgspecMapper(), upto)
    library_s = time.perf_counter() - t0
    out: dict[str, Any] = {"events": upto, "library_s": library_s, "jobs": len(reference.jobs)}
    for processes in (1, 2):
        fast = rebuild_jobs_view(home, upto=upto, processes=processes)
        same = (
            fast.position == reference.position
            and fast.jobs == reference.jobs
            and fast.queue() == reference.queue()
        )
        out[f"equal_processes_{processes}"] = same
    return out


def rebuild_memory(args: dict[str, Any]) -> dict[str, Any]:
    """RSS before, peak and after one single-process rebuild as of ``upto``."""
    before = memory_kib()
    t0 = time.perf_counter()
    view = rebuild_jobs_view(Path(args["home"]), upto=args.get("upto"), processes=1)
    seconds = time.perf_counter() - t0
    after = memory_kib()
    return {
        "events": view.position,
        "jobs": len(view.jobs),
        "seconds": seconds,
        "rss_before_kib": before["VmRSS"],
        "rss_peak_kib": after["VmHWM"],
        "rss_after_kib": after["VmRSS"],
    }


def rebuild_time(args: dict[str, Any]) -> dict[str, Any]:
    """Seconds per full rebuild, ``repeats`` times, with ``processes`` processes."""
    times = []
    view = None
    for _ in range(int(args["repeats"])):
        view = None  # let the previous view go before timing the next
        t0 = time.perf_counter()
        view = rebuild_jobs_view(Path(args["home"]), processes=int(args["processes"]))
        times.append(time.perf_counter() - t0)
    assert view is not None
    return {
        "events": view.position,
        "jobs": len(view.jobs),
        "seconds": times,
        "median_s": statistics.median(times),
    }


def product_rebuild(args: dict[str, Any]) -> dict[str, Any]:
    """The product's own path today: sheratan.views (EventReader + JobsView.apply), as_of."""
    from sheratan.views import JOBS, Views

    home = Path(args["home"])
    t0 = time.perf_counter()
    ledger = Ledger(home)
    open_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    view = Views(home, ledger).as_of(JOBS, ledger.last_position())
    fold_s = time.perf_counter() - t0
    return {"events": view.position, "jobs": len(view.jobs), "open_s": open_s, "fold_s": fold_s}


OPS = {
    "open": open_log,
    "verify": verify,
    "rebuild_memory": rebuild_memory,
    "rebuild_time": rebuild_time,
    "product_rebuild": product_rebuild,
}


def main(argv: list[str]) -> None:
    args = json.loads(argv[0])
    result = OPS[args["op"]](args)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
