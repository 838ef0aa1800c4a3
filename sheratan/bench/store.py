"""The store benchmark: Sheratan's ledger against its anchors, all measured in one run.

Workload: ``jobs`` jobs of five events each (created, queued, dispatched, started, completed),
encoded once to ``StoredEvent`` with ``sheratan.codec.MsgspecMapper``. Anchors, on the same
events and in the same run: eventsourcing's SQLite recorder (a file in a temp dir, the
library's defaults: WAL, ``synchronous=FULL``), its POPO recorder (in memory, no durability),
raw msgspec JSONL lines (the Python limit) and a bare write+fsync loop (the disk limit).

Every figure is ``{"value", "unit", "anchor", "anchor_value", "ratio", "target", "met"}`` (plus
``what`` and figure-specific details) with ``ratio = value / anchor_value``; values are medians
of ``repeats`` rounds, and a round runs every contender once, interleaved, so a noisy machine
slows them alike. ``figures`` holds only figures with a target from the issue; ``info`` holds
figures without one (opening the large log, the save-sized disk anchor), ``measurements`` every
series with its runs, and ``diagnostics`` what explains them (commits per save, build times,
memory, where a rebuild's time goes). Measurements that need a fresh process (opening a log,
rebuild time and memory) run in ``sheratan.bench._probe``; rebuilds there are the product's
own path, ``sheratan.views.Views.rebuild``/``as_of``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import ApplicationRecorder, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from events import Event
from events.jobs import JobCompleted, JobCreated, JobDispatched, JobQueued, JobStarted
from projections.jobs import project_job
from sheratan.bench.figures import environment
from sheratan.codec import MsgspecMapper
from sheratan.store.files import UtcClock
from sheratan.store.ledger import Ledger
from sheratan.store.recorders import JsonlApplicationRecorder
from sheratan.views import EventReader

#: Events per job in the workload (one save per job writes all five).
EVENTS_PER_JOB = 5
#: Rounds per measured figure; the figure is the median.
REPEATS = 3
#: Events per save in the batched-write figure.
BATCH_EVENTS = 1_000
#: The raw msgspec line writer fsyncs after this many lines.
RAW_FSYNC_EVERY_LINES = 1_000
#: Threads in the concurrent-save figure.
THREADS = 8
#: Notifications per select_notifications call in the read figure.
PAGE_SIZE = 1_000
#: Random jobs fetched from the large log.
GET_JOB_SAMPLES = 200
#: Fresh processes that open the large log with its sidecar index.
OPEN_REPEATS = 3
#: The bare loop's record: one small line per save.
BARE_RECORD = b"x" * 127 + b"\n"
#: Jobs per save while building the large log.
BUILD_JOBS_PER_SAVE = 1_000
#: The product's rebuild is compared with the library path on this many events.
VERIFY_EVENTS = 100_000
#: Jobs ``sheratan simulate`` puts in the home whose whole ``rebuild`` process is timed
#: (about 9.3 events a job: creation, decision, dispatch, result, score, priors, baselines).
PROCESS_JOBS = 20_000
#: The CLI the rebuild-process figure runs, as a user would.
CLI = Path(__file__).resolve().parents[2] / "cli.py"
#: The run refuses workloads beyond these (the large log is ~440 bytes per event on disk).
MAX_JOBS = 1_000_000
MAX_REBUILD_EVENTS = 20_000_000

_T0 = datetime(2026, 1, 1, tzinfo=UTC)

#: ``progress(message)`` hears what each step is doing (and this module's logger, at INFO).
Progress = Callable[[str], None] | None

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- workload


def job_events(index: int, rng: random.Random) -> list[Event]:
    """The five events of job ``index``: a realistic shell job that completes."""
    job_id = UUID(int=rng.getrandbits(128), version=4)
    at = _T0 + timedelta(milliseconds=index)
    worker = f"worker-{index % 7}"
    payload = {
        "cmd": "python",
        "args": ["-m", "tasks.render", f"--item={index}"],
        "env": {"STAGE": "bench"},
    }
    return [
        JobCreated(
            originator_id=job_id,
            originator_version=1,
            timestamp=at,
            kind="shell",
            payload=payload,
            payload_hash=hashlib.sha256(b"%d" % index).hexdigest(),
            priority=("critical", "high", "normal", "low")[index % 4],
        ),
        JobQueued(originator_id=job_id, originator_version=2, timestamp=at),
        JobDispatched(
            originator_id=job_id,
            originator_version=3,
            timestamp=at,
            worker=worker,
            attempt=1,
            lease_until=at + timedelta(seconds=300),
            decision_id=UUID(int=rng.getrandbits(128), version=4),
        ),
        JobStarted(
            originator_id=job_id, originator_version=4, timestamp=at, worker=worker, attempt=1
        ),
        JobCompleted(
            originator_id=job_id,
            originator_version=5,
            timestamp=at,
            result={"exit_code": 0, "stdout": f"rendered item {index}", "duration_ms": index % 900},
        ),
    ]


def encode_jobs(count: int, *, first: int = 0, seed: int = 0) -> list[list[StoredEvent]]:
    """Jobs ``first .. first + count - 1`` as stored events, one list (one save) per job."""
    rng = random.Random(f"{seed}:{first}")
    to_stored = MsgspecMapper().to_stored_event
    return [[to_stored(e) for e in job_events(i, rng)] for i in range(first, first + count)]


# ------------------------------------------------------------------------ contenders


class _Sheratan:
    name = "sheratan"

    def __init__(self, path: Path) -> None:
        self.home = path
        self.ledger = Ledger(path)
        self.recorder: ApplicationRecorder = JsonlApplicationRecorder(self.ledger)

    def close(self) -> None:
        self.ledger.close()


class _SQLite:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.datastore = SQLiteDatastore(str(path / "events.sqlite"))
        recorder = SQLiteApplicationRecorder(self.datastore)
        recorder.create_table()
        self.recorder = recorder

    def pragmas(self) -> dict[str, Any]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("PRAGMA journal_mode")
            journal = cursor.fetchone()[0]
            cursor.execute("PRAGMA synchronous")
            synchronous = cursor.fetchone()[0]
        return {"journal_mode": journal, "synchronous": synchronous}

    def close(self) -> None:
        self.datastore.close()


class _POPO:
    name = "popo"

    def __init__(self, path: Path) -> None:
        self.recorder = POPOApplicationRecorder()

    def close(self) -> None:
        pass


def _insert_each(recorder: ApplicationRecorder, saves: Sequence[Sequence[StoredEvent]]) -> float:
    insert = recorder.insert_events
    t0 = time.perf_counter()
    for save in saves:
        insert(save)
    return time.perf_counter() - t0


def _insert_threads(recorder: ApplicationRecorder, saves: Sequence[Sequence[StoredEvent]]) -> float:
    """Seconds for THREADS threads to save their share of ``saves``, one save per call."""
    barrier = threading.Barrier(THREADS + 1)
    errors: list[BaseException] = []

    def work(share: Sequence[Sequence[StoredEvent]]) -> None:
        insert = recorder.insert_events
        barrier.wait()
        try:
            for save in share:
                insert(save)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(saves[i::THREADS],)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return seconds


def _bare_fsync_loop(path: Path, saves: int, record: bytes = BARE_RECORD) -> float:
    """The disk limit: write one record and fsync it, ``saves`` times."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        t0 = time.perf_counter()
        for _ in range(saves):
            os.write(fd, record)
            os.fsync(fd)
        return time.perf_counter() - t0
    finally:
        os.close(fd)


class _RawLine(msgspec.Struct):
    pos: int
    ts: str
    stream: UUID | str
    ver: int
    topic: str
    data: msgspec.Raw


def _raw_lines_write(path: Path, events: Sequence[StoredEvent]) -> float:
    """The Python limit: msgspec-encode each event as a JSONL line, fsync every 1,000 lines."""
    encode = msgspec.json.Encoder().encode
    clock = UtcClock()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        t0 = time.perf_counter()
        pos = 0
        for start in range(0, len(events), RAW_FSYNC_EVERY_LINES):
            ts = clock.now()
            parts = []
            for event in events[start : start + RAW_FSYNC_EVERY_LINES]:
                pos += 1
                line = _RawLine(
                    pos,
                    ts,
                    event.originator_id,
                    event.originator_version,
                    event.topic,
                    msgspec.Raw(event.state),
                )
                parts.append(encode(line))
                parts.append(b"\n")
            view = memoryview(b"".join(parts))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        return time.perf_counter() - t0
    finally:
        os.close(fd)


def _read_all(recorder: ApplicationRecorder, mapper: MsgspecMapper) -> tuple[float, int]:
    """Seconds to page through every notification and decode it to a domain event."""
    to_domain = mapper.to_domain_event
    select = recorder.select_notifications
    count = 0
    t0 = time.perf_counter()
    start = 1
    while True:
        page = select(start, PAGE_SIZE)
        if not page:
            break
        for notification in page:
            to_domain(notification)
        count += len(page)
        start = page[-1].id + 1
    return time.perf_counter() - t0, count


def _raw_decode(home: Path) -> tuple[float, int]:
    """The Python limit for reads: every line of the log's segment files (plain buffered
    reads, no ledger, no index), one msgspec decode each straight to its event class.

    The decode is ``sheratan.views.EventReader.decode``: one msgspec call per line into a
    union tagged on the line's topic, then originator id and version set on the event.
    """
    decode = EventReader().decode
    count = 0
    t0 = time.perf_counter()
    for path in _segment_paths(home):
        with path.open("rb") as handle:
            for line in handle:
                decode(line)
                count += 1
    return time.perf_counter() - t0, count


def _segment_paths(home: Path) -> list[Path]:
    """The log's segment files in position order (their names are zero-padded positions)."""
    return sorted((home / "events").glob("*.jsonl"))


def _log_bytes(home: Path) -> int:
    return sum(path.stat().st_size for path in _segment_paths(home))


def _commits(home: Path) -> int:
    """How many commits wrote the log: every commit stamps all its lines with one ``ts``."""
    decoder = msgspec.json.Decoder(_Stamp)
    commits = 0
    previous = None
    for path in _segment_paths(home):
        with path.open("rb") as handle:
            for line in handle:
                ts = decoder.decode(line).ts
                if ts != previous:
                    commits += 1
                    previous = ts
    return commits


class _Stamp(msgspec.Struct):
    ts: str


# --------------------------------------------------------------------------- helpers


class _Runs:
    """Named measurement series; each reports its median."""

    def __init__(self) -> None:
        self.series: dict[str, dict[str, Any]] = {}

    def add(self, name: str, value: float, unit: str, **info: Any) -> None:
        entry = self.series.setdefault(name, {"unit": unit, "runs": []})
        entry["runs"].append(value)
        entry.update(info)

    def median(self, name: str) -> float:
        return statistics.median(self.series[name]["runs"])

    def report(self) -> dict[str, Any]:
        out = {}
        for name, entry in self.series.items():
            out[name] = {"median": statistics.median(entry["runs"]), **entry}
        return out


def _figure(
    value: float,
    unit: str,
    anchor: str,
    anchor_value: float | None,
    target: str | None,
    met: bool | None,
    **extra: Any,
) -> dict[str, Any]:
    ratio = value / anchor_value if anchor_value else None
    return {
        "value": value,
        "unit": unit,
        "anchor": anchor,
        "anchor_value": anchor_value,
        "ratio": ratio,
        "target": target,
        "met": met,
        **extra,
    }


def _ratio_figure(
    runs: _Runs, name: str, anchor_name: str, anchor: str, minimum: float, **extra: Any
) -> dict[str, Any]:
    value = runs.median(name)
    anchor_value = runs.median(anchor_name)
    return _figure(
        value,
        runs.series[name]["unit"],
        anchor,
        anchor_value,
        f"ratio >= {minimum:g}",
        value / anchor_value >= minimum,
        **extra,
    )


def _probe(op: str, **args: Any) -> dict[str, Any]:
    """Run one measurement of sheratan.bench._probe in a fresh Python process."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = (
        root + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else root
    )
    done = subprocess.run(
        [sys.executable, "-m", "sheratan.bench._probe", json.dumps({"op": op, **args})],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        msg = f"bench probe {op} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
        raise RuntimeError(msg)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_store_bench(
    jobs: int = 20_000,
    rebuild_events: int = 1_000_000,
    progress: Progress = None,
    *,
    process_jobs: int = PROCESS_JOBS,
    repeats: int = REPEATS,
    tmp_dir: str | None = None,
) -> dict[str, Any]:
    """Run every store figure against its anchors; return a JSON-able report."""
    if not 1 <= jobs <= MAX_JOBS:
        msg = f"jobs must be between 1 and {MAX_JOBS}, got {jobs}"
        raise ValueError(msg)
    if not EVENTS_PER_JOB * 2 <= rebuild_events <= MAX_REBUILD_EVENTS:
        msg = f"rebuild_events must be between {EVENTS_PER_JOB * 2} and {MAX_REBUILD_EVENTS}"
        raise ValueError(msg)
    if not 1 <= process_jobs <= MAX_JOBS:
        msg = f"process_jobs must be between 1 and {MAX_JOBS}, got {process_jobs}"
        raise ValueError(msg)
    if not 1 <= repeats <= 20:
        msg = f"repeats must be between 1 and 20, got {repeats}"
        raise ValueError(msg)
    steps = 0

    def say(message: str) -> None:
        nonlocal steps
        steps += 1
        log.info("bench store [%d]: %s", steps, message)
        if progress is not None:
            progress(message)

    started = time.perf_counter()
    os.sync()  # let earlier writeback finish: it would slow every fsync measured here
    root = Path(tempfile.mkdtemp(prefix="sheratan-bench-", dir=tmp_dir))
    try:
        report = _run(jobs, rebuild_events, process_jobs, repeats, root, say)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report["elapsed_s"] = time.perf_counter() - started
    return report


def _run(
    jobs: int,
    rebuild_events: int,
    process_jobs: int,
    repeats: int,
    root: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    runs = _Runs()
    diagnostics: dict[str, Any] = {}
    mapper = MsgspecMapper()

    say(f"encoding {jobs} jobs x {EVENTS_PER_JOB} events")
    saves = encode_jobs(jobs)
    events = [event for save in saves for event in save]
    batches = [events[i : i + BATCH_EVENTS] for i in range(0, len(events), BATCH_EVENTS)]
    sqlite_pragmas: dict[str, Any] = {}
    counter = iter(range(1_000_000))

    def fresh(kind: Any) -> Any:
        path = root / f"{kind.name}-{next(counter)}"
        path.mkdir()
        return kind(path)

    # 1. one save per job, single thread -------------------------------------------------
    save_bytes = 0
    for round_ in range(repeats):
        say(f"write, one save per job: round {round_ + 1}/{repeats}")
        for kind in (_Sheratan, _SQLite, _POPO):
            contender = fresh(kind)
            seconds = _insert_each(contender.recorder, saves)
            runs.add(f"{kind.name}_save_per_job", jobs / seconds, "saves/s")
            if kind is _SQLite and not sqlite_pragmas:
                sqlite_pragmas = contender.pragmas()
            if kind is _Sheratan:
                save_bytes = _log_bytes(contender.home) // jobs
                if round_ == repeats - 1:
                    diagnostics["sheratan_save_per_job_commits"] = _commits(contender.home)
            contender.close()
        seconds = _bare_fsync_loop(root / f"bare-{round_}.log", jobs)
        runs.add("bare_fsync_loop", jobs / seconds, "saves/s", record_bytes=len(BARE_RECORD))
        record = b"x" * (save_bytes - 1) + b"\n"
        seconds = _bare_fsync_loop(root / f"bare-save-sized-{round_}.log", jobs, record)
        runs.add("bare_fsync_loop_save_sized", jobs / seconds, "saves/s", record_bytes=save_bytes)

    # 2. saves of 1,000 events --------------------------------------------------------
    keep: dict[str, Any] = {}
    for round_ in range(repeats):
        say(f"write, saves of {BATCH_EVENTS} events: round {round_ + 1}/{repeats}")
        seconds = _raw_lines_write(root / f"raw-{round_}.jsonl", events)
        runs.add("raw_msgspec_lines", len(events) / seconds, "events/s")
        for kind in (_Sheratan, _SQLite, _POPO):
            contender = fresh(kind)
            seconds = _insert_each(contender.recorder, batches)
            runs.add(f"{kind.name}_batch", len(events) / seconds, "events/s")
            if round_ == repeats - 1:
                keep[kind.name] = contender  # read back in figure 4
            else:
                contender.close()

    # 3. eight threads, one save per job each ---------------------------------------------
    for round_ in range(repeats):
        say(f"write, {THREADS} threads saving one job each: round {round_ + 1}/{repeats}")
        for kind, chosen in ((_Sheratan, saves), (_SQLite, saves)):
            contender = fresh(kind)
            seconds = _insert_threads(contender.recorder, chosen)
            runs.add(f"{kind.name}_threads", len(chosen) / seconds, "saves/s")
            if kind is _Sheratan and round_ == repeats - 1:
                commits = _commits(contender.home)
                diagnostics["sheratan_threads_commits"] = commits
                diagnostics["sheratan_threads_saves_per_commit"] = len(chosen) / commits
            contender.close()

    # 4. read every notification and decode it ----------------------------------------------
    sheratan_home = keep["sheratan"].home
    keep["sheratan"].close()
    reopened = _Sheratan(sheratan_home)
    readers = {
        "sheratan": reopened.recorder,
        "sqlite": keep["sqlite"].recorder,
        "popo": keep["popo"].recorder,
    }
    for round_ in range(repeats):
        say(f"read and decode all {len(events)} events: round {round_ + 1}/{repeats}")
        seconds, count = _raw_decode(sheratan_home)
        assert count == len(events), (count, len(events))
        runs.add("raw_msgspec_decode", count / seconds, "events/s")
        for name, recorder in readers.items():
            seconds, count = _read_all(recorder, mapper)
            assert count == len(events), (name, count, len(events))
            runs.add(f"{name}_read", count / seconds, "events/s")
    reopened.close()
    keep["sqlite"].close()
    del saves, events, batches, keep, readers, reopened

    # 5. and 6. the large log: rebuild, get one job, open -----------------------------------
    large = _large_log(root, rebuild_events, repeats, runs, diagnostics, say)

    # 7. a whole `sheratan rebuild` process on a simulated home ------------------------------
    large["process"] = _rebuild_process(root, process_jobs, repeats, runs, say)

    figures, info = _figures(runs, large)
    met = [f["met"] for f in figures.values()]
    return {
        "bench": "store",
        "params": {
            "jobs": jobs,
            "events_per_job": EVENTS_PER_JOB,
            "rebuild_events": large["events"],
            "process_jobs": process_jobs,
            "repeats": repeats,
            "batch_events": BATCH_EVENTS,
            "raw_fsync_every_lines": RAW_FSYNC_EVERY_LINES,
            "threads": THREADS,
            "page_size": PAGE_SIZE,
            "get_job_samples": GET_JOB_SAMPLES,
        },
        "environment": environment(
            ("eventsourcing", "msgspec"),
            sqlite=sqlite3.sqlite_version,
            sqlite_pragmas=sqlite_pragmas,
        ),
        "figures": figures,
        "info": info,
        "targets_met": sum(met),
        "targets_total": len(met),
        "all_met": all(met),
        "measurements": runs.report(),
        "diagnostics": diagnostics,
    }


def _large_log(
    root: Path,
    rebuild_events: int,
    repeats: int,
    runs: _Runs,
    diagnostics: dict[str, Any],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Build the large log (and the same events in SQLite), then measure it in fresh processes."""
    big_jobs = rebuild_events // EVENTS_PER_JOB
    home = root / "large"
    home.mkdir()
    sheratan = _Sheratan(home)
    (root / "large-sqlite").mkdir()
    sqlite = _SQLite(root / "large-sqlite")
    say(f"building a log of {big_jobs * EVENTS_PER_JOB} events (and the same in SQLite)")
    write_s = {"sheratan": 0.0, "sqlite": 0.0}
    t0 = time.perf_counter()
    for first in range(0, big_jobs, BUILD_JOBS_PER_SAVE):
        chunk = encode_jobs(min(BUILD_JOBS_PER_SAVE, big_jobs - first), first=first, seed=1)
        flat = [event for save in chunk for event in save]
        for name, contender in (("sheratan", sheratan), ("sqlite", sqlite)):
            t1 = time.perf_counter()
            contender.recorder.insert_events(flat)
            write_s[name] += time.perf_counter() - t1
    events = big_jobs * EVENTS_PER_JOB
    sheratan.close()
    del sheratan
    os.sync()  # flush the build's writeback before measuring
    segments = sorted((home / "events").glob("*.jsonl"))
    out_diag: dict[str, Any] = {
        "large_log_build_s": time.perf_counter() - t0,
        "large_log_write_events_per_s": {k: events / v for k, v in write_s.items()},
        "large_log_bytes": sum(p.stat().st_size for p in segments),
        "large_log_segments": len(segments),
    }

    say("opening the large log in fresh processes (with the sidecar index), getting jobs")
    first_open = _probe("open", home=str(home), get_jobs=min(GET_JOB_SAMPLES, big_jobs), seed=3)
    opened = [first_open] + [_probe("open", home=str(home)) for _ in range(OPEN_REPEATS - 1)]
    for probe in opened:
        runs.add("open_with_sidecar", probe["open_s"], "s")
        runs.add("sidecar_load", probe["sidecar_s"], "s")
    for _ in range(OPEN_REPEATS):
        touched = _probe("open", home=str(home), touch_active=True)
        runs.add("open_after_another_writer", touched["open_s"], "s")
    for ms in first_open["get_ms"]:
        runs.add("sheratan_get_job", ms, "ms")
    to_domain = MsgspecMapper().to_domain_event
    for job_id in first_open["ids"]:
        t1 = time.perf_counter()
        stored = sqlite.recorder.select_events(UUID(job_id))
        job = project_job(None, [to_domain(s) for s in stored])
        runs.add("sqlite_get_job", (time.perf_counter() - t1) * 1000, "ms")
        assert job is not None and job.version == EVENTS_PER_JOB
    sqlite.close()

    say("opening the large log without its sidecar index")
    sidecar = home / "index" / "events.idx"
    aside = sidecar.with_name("events.idx.bench-aside")
    sidecar.rename(aside)
    try:
        runs.add("open_without_sidecar", _probe("open", home=str(home))["open_s"], "s")
    finally:
        aside.rename(sidecar)

    say("checking the product's view (Views.as_of) against the library path")
    # stop 3 events into a job so one job is partway (queued) and the queue is compared too
    verify = _probe("verify", home=str(home), events=min(VERIFY_EVENTS, events) - 3)
    runs.add("library_rebuild", verify["events"] / verify["library_s"], "events/s")
    out_diag["rebuild_verified"] = verify

    say("rebuild memory at half and full size (Views.as_of)")
    half = (big_jobs // 2) * EVENTS_PER_JOB
    memory = {
        "half": _probe("rebuild_memory", home=str(home), upto=half),
        "full": _probe("rebuild_memory", home=str(home), upto=events),
    }
    out_diag["rebuild_memory"] = memory

    say(f"rebuild the jobs view from {events} events (Views.rebuild)")
    timed = _probe("rebuild_time", home=str(home), repeats=repeats)
    assert timed["events"] == events and timed["jobs"] == big_jobs, timed
    for seconds in timed["seconds"]:
        runs.add("product_rebuild", events / seconds, "events/s")
    out_diag["rebuild_time"] = timed

    say("where the rebuild's time goes: read and split, decode, fold")
    breakdown = _probe("rebuild_breakdown", home=str(home), repeats=repeats)
    out_diag["rebuild_breakdown"] = breakdown
    diagnostics.update(out_diag)
    return {"events": events, "jobs": big_jobs, "memory": memory, "verify": verify}


def _cli(*args: str) -> str:
    """Run ``cli.py`` with ``args`` in a fresh process; its standard output."""
    done = subprocess.run(
        [sys.executable, str(CLI), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        msg = f"cli.py {args[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
        raise RuntimeError(msg)
    return done.stdout


def _rebuild_process(
    root: Path, jobs: int, repeats: int, runs: _Runs, say: Callable[[str], None]
) -> dict[str, Any]:
    """Time whole ``sheratan rebuild --json`` processes (start, imports, opening the home,
    one pass folding every view, saving them) on a home ``simulate`` filled, against a bare
    msgspec decode of the same segments in this process (``_raw_decode``), interleaved."""
    home = root / "simulated"
    say(f"simulating {jobs} jobs into a home for the rebuild process")
    _cli("init", "--home", str(home))
    _cli("simulate", "--jobs", str(jobs), "--home", str(home), "--json")
    os.sync()
    folds: list[float] = []
    events = 0
    for round_ in range(repeats):
        say(f"a whole rebuild process: round {round_ + 1}/{repeats}")
        seconds, events = _raw_decode(home)
        runs.add("process_log_decode", events / seconds, "events/s")
        t0 = time.perf_counter()
        report = json.loads(_cli("rebuild", "--home", str(home), "--json"))
        seconds = time.perf_counter() - t0
        runs.add("rebuild_process", events / seconds, "events/s")
        folds.append(max(view["seconds"] for view in report["views"].values()))
    t0 = time.perf_counter()
    _cli("--help")
    return {
        "events": events,
        "jobs": jobs,
        "views": len(report["views"]),
        "fold_s": folds,
        "help_process_s": time.perf_counter() - t0,
    }


def _memory_figure(memory: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS growth of the product's rebuild (``Views.as_of``) at two sizes, each in a fresh
    process with the ledger already open; it should follow jobs, not events.

    Both sizes have five events per job, so the growth ratio alone cannot tell jobs from
    events; what can is the part of the peak that the finished view does not keep
    (``peak - retained``): a reader that held events would see it double with the log.
    """
    half, full = memory["half"], memory["full"]

    def delta(m: dict[str, Any]) -> tuple[int, int]:
        peak = (m["rss_peak_kib"] - m["rss_before_kib"]) * 1024
        retained = (m["rss_after_kib"] - m["rss_before_kib"]) * 1024
        return peak, retained

    half_peak, half_retained = delta(half)
    full_peak, full_retained = delta(full)
    transient_half = half_peak - half_retained
    transient_full = full_peak - full_retained
    per_job_half = half_peak / max(half["jobs"], 1)
    per_job_full = full_peak / max(full["jobs"], 1)
    met = transient_full <= 1.5 * transient_half + 16 * 1024 * 1024 and (
        per_job_full <= 1.25 * per_job_half
    )
    return _figure(
        full_peak,
        "bytes",
        f"peak RSS growth of the same Views.as_of(JOBS, {half['events']})",
        half_peak,
        "peak per job flat (<= 1.25x) and transient (peak - retained) not growing with events",
        met,
        events=[half["events"], full["events"]],
        jobs=[half["jobs"], full["jobs"]],
        peak_bytes_per_job=[per_job_half, per_job_full],
        transient_bytes=[transient_half, transient_full],
        retained_bytes=[half_retained, full_retained],
        what=f"peak RSS growth of Views.as_of(JOBS, {full['events']}) in a fresh process",
        ledger_open_bytes=[(m["rss_before_kib"] - m["rss_start_kib"]) * 1024 for m in (half, full)],
    )


def _figures(runs: _Runs, large: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    one = "Sheratan, one save (5 events) per job"
    figures = {
        "write_save_per_job_vs_fsync_loop": _ratio_figure(
            runs,
            "sheratan_save_per_job",
            "bare_fsync_loop",
            f"bare write+fsync loop, one {len(BARE_RECORD)}-byte record per save",
            0.85,
            what=one,
            save_sized_fsync_loop=runs.median("bare_fsync_loop_save_sized"),
            save_sized_record_bytes=runs.series["bare_fsync_loop_save_sized"]["record_bytes"],
            ratio_to_save_sized_loop=runs.median("sheratan_save_per_job")
            / runs.median("bare_fsync_loop_save_sized"),
        ),
        "write_save_per_job_vs_sqlite": _ratio_figure(
            runs,
            "sheratan_save_per_job",
            "sqlite_save_per_job",
            "eventsourcing SQLiteApplicationRecorder, one save per job",
            1.0,
            what=one,
        ),
        "write_batch_vs_sqlite": _ratio_figure(
            runs,
            "sheratan_batch",
            "sqlite_batch",
            f"eventsourcing SQLiteApplicationRecorder, saves of {BATCH_EVENTS}",
            2.5,
            what=f"Sheratan, saves of {BATCH_EVENTS} events",
        ),
        "write_batch_vs_raw_lines": _ratio_figure(
            runs,
            "sheratan_batch",
            "raw_msgspec_lines",
            f"raw msgspec JSONL lines, fsync every {RAW_FSYNC_EVERY_LINES}",
            0.40,
            what=f"Sheratan, saves of {BATCH_EVENTS} events",
        ),
        "write_threads_vs_single_thread": _ratio_figure(
            runs,
            "sheratan_threads",
            "sheratan_save_per_job",
            "Sheratan, one save per job, one thread",
            2.5,
            what=f"Sheratan, {THREADS} threads saving one job each (group commit)",
        ),
        "write_threads_vs_sqlite": _ratio_figure(
            runs,
            "sheratan_threads",
            "sqlite_threads",
            f"eventsourcing SQLiteApplicationRecorder, {THREADS} threads",
            2.5,
            what=f"Sheratan, {THREADS} threads saving one job each (group commit)",
        ),
        "read_decode_vs_sqlite": _ratio_figure(
            runs,
            "sheratan_read",
            "sqlite_read",
            "eventsourcing SQLiteApplicationRecorder, same pages + mapper",
            3.0,
            what=f"select_notifications pages of {PAGE_SIZE} + MsgspecMapper.to_domain_event",
        ),
        "read_decode_vs_raw_decode": _ratio_figure(
            runs,
            "sheratan_read",
            "raw_msgspec_decode",
            "raw msgspec decode of the same lines to the event types",
            0.5,
            what=f"select_notifications pages of {PAGE_SIZE} + MsgspecMapper.to_domain_event",
        ),
    }
    rebuild = runs.median("product_rebuild")
    verify = large["verify"]
    same = verify["equal_position"] and verify["equal_jobs"] and verify["equal_queue"]
    figures["rebuild_jobs_view"] = _figure(
        rebuild,
        "events/s",
        "library path: select_notifications + MsgspecMapper + JobsView.apply",
        runs.median("library_rebuild"),
        "value >= 500000 (and the view equal to the library path's)",
        rebuild >= 500_000 and same,
        what=(
            f"sheratan.views.Views.rebuild(JOBS) (fold from zero, save, swap), fresh process, "
            f"ledger already open, {large['events']} events"
        ),
        verified_against_library_path=verify,
    )
    figures["rebuild_memory"] = _memory_figure(large["memory"])
    process = large["process"]
    figures["rebuild_process_vs_decode"] = _ratio_figure(
        runs,
        "rebuild_process",
        "process_log_decode",
        "bare msgspec decode of the same segments to the event types, in process",
        0.5,
        what=(
            f"a whole `sheratan rebuild --json` process ({process['views']} views, one pass), "
            f"{process['events']} events of {process['jobs']} simulated jobs"
        ),
        fold_s=statistics.median(process["fold_s"]),
        help_process_s=process["help_process_s"],
    )
    get_ms = runs.series["sheratan_get_job"]["runs"]
    figures["get_job"] = _figure(
        runs.median("sheratan_get_job"),
        "ms",
        f"eventsourcing SQLiteApplicationRecorder holding the same {large['events']} events",
        runs.median("sqlite_get_job"),
        "value < 2",
        runs.median("sheratan_get_job") < 2.0,
        what=f"select_events + to_domain_event + project_job, median of {len(get_ms)} random jobs",
        p95_ms=statistics.quantiles(get_ms, n=20)[-1] if len(get_ms) > 1 else get_ms[0],
        max_ms=max(get_ms),
    )
    info = {}
    info["write_save_per_job_vs_save_sized_fsync_loop"] = _figure(
        runs.median("sheratan_save_per_job"),
        "saves/s",
        (
            "bare write+fsync loop, one record per save of the bytes Sheratan writes per save "
            f"({runs.series['bare_fsync_loop_save_sized']['record_bytes']} bytes)"
        ),
        runs.median("bare_fsync_loop_save_sized"),
        None,
        None,
        what=one,
    )
    figures["open_for_write_vs_sidecar_load"] = _figure(
        runs.median("open_with_sidecar"),
        "s",
        "loading the sidecar index alone: what opening did before the integrity checks",
        runs.median("sidecar_load"),
        "<= 1.5x",
        runs.median("open_with_sidecar") <= 1.5 * runs.median("sidecar_load"),
        what=f"Ledger(home) with every open-time check, fresh process, {large['events']} events",
        after_another_writer=runs.median("open_after_another_writer"),
        after_another_writer_ratio=runs.median("open_after_another_writer")
        / runs.median("sidecar_load"),
    )
    info["open_log"] = _figure(
        runs.median("open_with_sidecar"),
        "s",
        "Ledger(home) without the sidecar index (full scan, hash chain checked)",
        runs.median("open_without_sidecar"),
        None,
        None,
        what=f"Ledger(home) with its sidecar index, fresh process, {large['events']} events",
    )
    return figures, info
