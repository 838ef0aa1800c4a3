"""``bench all``: every bench with its anchors in one run, as one JSON document.

The benches are a registry, one entry each: a bench added later joins ``bench all`` (and
``bench compare``) with one line in BENCHES. Each entry runs its bench at two sizes: a modest
one (the whole suite in about a quarter of an hour on a 2-core machine) and ``quick`` (a
smoke run of seconds each, for tests and CI). The document keeps, per bench, its figures
(value, anchor, ratio, target, met) and its information figures, beside the machine's
description, so that two runs can be set side by side (sheratan/bench/compare.py).

A bench that fails is reported as failed, with its one-line reason, and the others still
run: a machine without a free port or without Chromium still measures everything else.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sheratan.bench.figures import environment
from sheratan.progress import Progress

#: What a document of ``bench all`` says it is (``bench compare`` refuses anything else).
KIND = "sheratan.bench.all"
#: Its layout's version: bump it when a reader must tell layouts apart.
VERSION = 1
#: The packages whose versions the machine's description names.
PACKAGES = ("sheratan", "eventsourcing", "msgspec", "duckdb", "numpy", "litestar", "uvicorn")


@dataclass(frozen=True)
class Bench:
    """One bench of the suite: ``run(shown, quick)`` returns its report (with ``figures``)."""

    name: str
    run: Callable[[Progress, bool], dict[str, Any]]
    what: str


def _store(shown: Progress, quick: bool) -> dict[str, Any]:
    from sheratan.bench.store import run_store_bench

    jobs, events = (50, 2_000) if quick else (3_000, 200_000)
    return run_store_bench(jobs=jobs, rebuild_events=events, progress=shown.say)


def _decide(shown: Progress, quick: bool) -> dict[str, Any]:
    from sheratan.bench.decide import run_decide_bench

    size, repeats, replay_jobs = (200, 1, 300) if quick else (3_000, 3, 10_000)
    return run_decide_bench(
        decisions=size,
        jobs=size,
        repeats=repeats,
        replay_jobs=replay_jobs,
        progress=shown.say,
    )


def _analytics(shown: Progress, quick: bool) -> dict[str, Any]:
    from sheratan.bench.analytics import run_analytics_bench

    decisions, repeats, counterfactual, resamples = (
        (3_000, 1, 1_000, 50) if quick else (60_000, 2, 20_000, 500)
    )
    return run_analytics_bench(
        decisions=decisions,
        repeats=repeats,
        counterfactual_decisions=counterfactual,
        resamples=resamples,
        progress=shown,
    )


def _audit(shown: Progress, quick: bool) -> dict[str, Any]:
    from sheratan.bench.audit import run_audit_bench

    return run_audit_bench(events=5_000 if quick else 200_000, progress=shown.say)


def _accounts(shown: Progress, quick: bool) -> dict[str, Any]:
    from sheratan.bench.accounts import run_accounts_bench

    events, simulate_jobs = (10_000, 200) if quick else (200_000, 3_000)
    return run_accounts_bench(events=events, simulate_jobs=simulate_jobs, progress=shown.say)


def _runtime(shown: Progress, quick: bool) -> dict[str, Any]:
    from sheratan.bench.runtime import run_runtime_bench

    samples, jobs = (10, 100) if quick else (100, 1_000)
    return run_runtime_bench(samples=samples, jobs=jobs, progress=shown.say)


def _api(shown: Progress, quick: bool) -> dict[str, Any]:
    from sheratan.bench.api import run_api_bench

    requests, rounds, decisions, events, loads = (
        (80, 10, 10, 2_000, 1) if quick else (1_000, 100, 300, 200_000, 5)
    )
    return run_api_bench(
        requests=requests,
        rounds=rounds,
        decisions=decisions,
        events=events,
        progress=shown.say,
        page_loads=loads,
    )


def _cli(shown: Progress, quick: bool) -> dict[str, Any]:
    from sheratan.bench.cli_start import run_cli_bench

    return run_cli_bench(repeats=3 if quick else 11, progress=shown.say)


def _scale(shown: Progress, quick: bool) -> dict[str, Any]:
    from sheratan.bench.scale import run_scale_bench

    events_jobs, jobs, repeats, seconds = (400, 50, 1, 2.0) if quick else (6_000, 3_000, 3, 10.0)
    return run_scale_bench(
        events_jobs=events_jobs,
        jobs=jobs,
        repeats=repeats,
        load_seconds=seconds,
        progress=shown.say,
    )


#: Every bench of ``bench all``, in the order they run: one line per bench.
BENCHES: tuple[Bench, ...] = (
    Bench("cli", _cli, "CLI start: --help, job show, job create against python -c pass"),
    Bench("store", _store, "the ledger against SQLite, raw msgspec lines and bare fsync"),
    Bench("decide", _decide, "a dispatch decision's CPU and simulate's jobs/s"),
    Bench("analytics", _analytics, "why stats, trace, exact replay, counterfactual"),
    Bench("audit", _audit, "audit verify, prove, proof size"),
    Bench("accounts", _accounts, "a balance from the view against a scan"),
    Bench("runtime", _runtime, "create→start latency, end-to-end jobs/s, idle CPU"),
    Bench("api", _api, "job create over HTTP, claim→result, first render, views as of"),
    Bench("scale", _scale, "PostgreSQL: recorder by Sheratan vs bare, 1-3 dispatchers, export lag"),
)
NAMES = tuple(bench.name for bench in BENCHES)


def run_all(shown: Progress, *, quick: bool = False, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run the benches (all, or ``only`` these) one after the other; the document."""
    started = time.perf_counter()
    benches: dict[str, Any] = {}
    chosen = [bench for bench in BENCHES if not only or bench.name in only]
    for number, bench in enumerate(chosen, 1):
        shown.announce(f"bench {bench.name} ({number}/{len(chosen)}): {bench.what}")
        began = time.perf_counter()
        try:
            report = bench.run(shown, quick)
        except Exception as error:  # one bench failing never stops the others
            benches[bench.name] = {"error": _one_line(error)}
        else:
            benches[bench.name] = _kept(report)
        benches[bench.name]["seconds"] = round(time.perf_counter() - began, 3)
    return {
        "kind": KIND,
        "version": VERSION,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "seconds": round(time.perf_counter() - started, 3),
        "environment": environment(PACKAGES, commit=_commit()),
        "benches": benches,
        "failed": sorted(name for name, part in benches.items() if "error" in part),
    }


def _kept(report: dict[str, Any]) -> dict[str, Any]:
    """What the suite keeps of a bench's report: its figures, information and skips."""
    kept = {"figures": report["figures"], "info": report.get("info", {})}
    if report.get("skipped"):
        kept["skipped"] = report["skipped"]
    return kept


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"


def _commit() -> str | None:
    """The source's git commit, when it runs from a checkout (a run's identity)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if done.returncode == 0:
            return done.stdout.strip()
    return None
