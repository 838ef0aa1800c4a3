"""The accounts benchmark: the balance of one account on a large log, from the projection.

Workload: a fresh home whose log holds ``events`` events: job events (five per job,
``sheratan.bench.store.encode_jobs``) with, every ``JOBS_PER_CHARGE`` jobs, one paid attempt's
hold and settlement on one of ``ACCOUNTS`` accounts (opened and credited first). The figure:

- ``balance_latency``: ``account show``'s service path (``Views.current(ACCOUNTS)``: load the
  saved view, check its position's chain hash, fold nothing new; then ``accounts.show``) in
  ms, median over ``SAMPLES`` calls with the home open (target: at most 2 ms), against a scan:
  folding that account's events out of the whole log (what it would cost without the view).
- ``simulate_economy``: ``simulate`` with every job paid (a hold and a settlement per
  attempt, the budget gate reading the account), the shipped limits (``workers.max_attempts``
  gating candidates) and the shipped anomaly rules watching each round, in jobs per second,
  against the same ``simulate`` in the same run with no payer, every rule disabled and the
  worker limit out of reach (target: at least 80% of it). Fresh homes, alternated runs,
  medians of ``SIMULATE_RUNS``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec

from events import Event
from events.accounts import (
    ACCOUNT_EVENTS,
    AccountCredited,
    AccountHeld,
    AccountOpened,
    AccountSettled,
)
from projections.accounts import AccountsView
from sheratan import accounts
from sheratan.bench.figures import environment, figure
from sheratan.bench.store import encode_jobs
from sheratan.codec import MsgspecMapper
from sheratan.dispatch.service import EngineConfig, Paid, simulate
from sheratan.home import HOME_FORMAT, MARKER, Home, HomeMarker, init_home
from sheratan.store.files import write_durably
from sheratan.store.recorders import JsonlApplicationRecorder
from sheratan.streams import account_stream, charge_stream
from sheratan.views import ACCOUNTS
from sheratan.workers.simulated import EXAMPLE_WORKERS, load_profiles

ACCOUNTS_COUNT = 1_000
#: One paid attempt (a hold and its settlement) per this many jobs of the log.
JOBS_PER_CHARGE = 10
JOBS_PER_SAVE = 1_000
SAMPLES = 101
TARGET_MS = 2.0
SIMULATE_RUNS = 5
#: ``simulate`` with the economy on must keep at least this share of its plain pace.
SIMULATE_TARGET = 0.8
#: The economy run's payer: enough funds that no job is refused for want of them.
PAYER_FUNDS_MICROS = 10**15
#: The plain run's overrides: every anomaly rule off, the worker limit out of reach.
PLAIN_SYSTEM = {
    "rules": {
        rule: {"enabled": False}
        for rule in ("failure_rate", "timeouts", "silent_workers", "queue_depth", "drift")
    }
}
PLAIN_LIMITS = {"workers": {"max_attempts": 10**9}}
_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run_accounts_bench(
    *, events: int, simulate_jobs: int, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    say = progress or (lambda _message: None)
    with tempfile.TemporaryDirectory(prefix="sheratan-bench-accounts-") as folder:
        home_path = Path(folder) / "home"
        say(f"generating a log of {events:,} events with paid attempts")
        generate(home_path, events)
        home = Home(home_path)
        try:
            report = _measure(home, say)
        finally:
            home.close()
            shutil.rmtree(home_path, ignore_errors=True)
        report["figures"]["simulate_economy"] = measure_simulate(Path(folder), simulate_jobs, say)
    return report


def measure_simulate(root: Path, jobs: int, say: Callable[[str], None]) -> dict[str, Any]:
    """``simulate`` with accounts, limits and anomaly rules against ``simulate`` without."""
    (root / "plain-system.json").write_text(json.dumps(PLAIN_SYSTEM))
    (root / "plain-limits.json").write_text(json.dumps(PLAIN_LIMITS))
    plain = EngineConfig.load(
        seed=1,
        system_path=root / "plain-system.json",
        limits_path=root / "plain-limits.json",
    )
    economy = EngineConfig.load(seed=1)
    rates: dict[str, list[float]] = {"plain": [], "economy": []}
    events: dict[str, float] = {}
    for run in range(SIMULATE_RUNS):
        for name, config in (("plain", plain), ("economy", economy)):
            say(f"simulate, {name}, run {run + 1} of {SIMULATE_RUNS}: {jobs:,} jobs")
            rate, events[name] = _simulate_rate(root / f"{name}-{run}", config, jobs, name)
            rates[name].append(rate)
    value, anchor = statistics.median(rates["economy"]), statistics.median(rates["plain"])
    return figure(
        value,
        "jobs/s",
        "simulate with no payer, no anomaly rule and no worker limit",
        anchor,
        f">= {SIMULATE_TARGET:.0%} of the anchor",
        value >= SIMULATE_TARGET * anchor,
        jobs=jobs,
        runs=SIMULATE_RUNS,
        economy_runs=rates["economy"],
        plain_runs=rates["plain"],
        events_per_job=events,
    )


def _simulate_rate(path: Path, config: EngineConfig, jobs: int, name: str) -> tuple[float, float]:
    """Jobs per second of one simulate run in a fresh home, and its events per job."""
    init_home(path)
    home = Home.open(path)
    try:
        paid = Paid()
        if name == "economy":
            home.app.open_account("payer", balance_micros=PAYER_FUNDS_MICROS)
            paid = Paid("payer")
        t0 = time.perf_counter()
        report = simulate(home, config, load_profiles(EXAMPLE_WORKERS), jobs, paid=paid)
        elapsed = time.perf_counter() - t0
        assert report["jobs"] == jobs, report
        if paid.payer is not None:
            charged = accounts.show(home.views.current(ACCOUNTS), paid.payer)
            assert charged["attempts_settled"] > 0, charged
        return jobs / elapsed, report["events"] / jobs
    finally:
        home.close()
        shutil.rmtree(path, ignore_errors=True)


def generate(home: Path, events: int) -> None:
    """About ``events`` events: accounts opened and credited, then job saves with a paid
    attempt's hold and settlement every JOBS_PER_CHARGE jobs."""
    home.mkdir(parents=True)
    write_durably(home / MARKER, msgspec.json.encode(HomeMarker(HOME_FORMAT)))
    ledger = Home(home).ledger
    recorder = JsonlApplicationRecorder(ledger)
    to_stored = MsgspecMapper().to_stored_event
    opening: list[Event] = []
    for a in range(ACCOUNTS_COUNT):
        stream = account_stream(_name(a))
        opening.append(
            AccountOpened(
                originator_id=stream, originator_version=1, timestamp=_T0, account_id=_name(a)
            )
        )
        opening.append(
            AccountCredited(
                originator_id=stream,
                originator_version=2,
                timestamp=_T0,
                account_id=_name(a),
                amount_micros=10**12,
            )
        )
    recorder.insert_events([to_stored(e) for e in opening])
    per_job = 5 + 2 / JOBS_PER_CHARGE
    jobs = max(1, int((events - len(opening)) / per_job))
    for first in range(0, jobs, JOBS_PER_SAVE):
        saves = encode_jobs(min(JOBS_PER_SAVE, jobs - first), first=first, seed=1)
        stored = []
        for offset, save in enumerate(saves):
            stored += save
            index = first + offset
            if index % JOBS_PER_CHARGE == 0:
                stored += [to_stored(e) for e in _charge(index)]
        recorder.insert_events(stored)
    ledger.close()


def _name(index: int) -> str:
    return f"account-{index}"


def _charge(index: int) -> list[Event]:
    """A hold of 2 units and its settlement at a cost of 1.25 on the job's payer."""
    account = _name(index % ACCOUNTS_COUNT)
    job_id = UUID(int=index + 1)
    stream = charge_stream(account, job_id, 1)
    at = _T0 + timedelta(milliseconds=index)
    common: dict[str, Any] = {"originator_id": stream, "timestamp": at, "account_id": account}
    return [
        AccountHeld(
            **common,
            originator_version=1,
            job_id=job_id,
            attempt=1,
            amount_micros=2_000_000,
            worker="w",
        ),
        AccountSettled(
            **common,
            originator_version=2,
            job_id=job_id,
            attempt=1,
            cost_micros=1_250_000,
            released_micros=750_000,
        ),
    ]


def _measure(home: Home, say: Callable[[str], None]) -> dict[str, Any]:
    size = home.ledger.last_position()
    wanted = _name(ACCOUNTS_COUNT // 2)
    say("folding the accounts view once (saved)")
    t0 = time.perf_counter()
    home.views.rebuild(ACCOUNTS)
    rebuild_s = time.perf_counter() - t0

    say("account show from the projection")
    shown_ms: list[float] = []
    shown: dict[str, Any] = {}
    for _ in range(SAMPLES):
        t0 = time.perf_counter()
        shown = accounts.show(home.views.current(ACCOUNTS), wanted)
        shown_ms.append((time.perf_counter() - t0) * 1000)

    say("the anchor: the account's balance by a scan of the log")
    t0 = time.perf_counter()
    scanned = _scan(home, wanted)
    scan_ms = (time.perf_counter() - t0) * 1000
    assert scanned == shown["balance_micros"], (scanned, shown)

    value = statistics.median(shown_ms)
    return {
        "events": size,
        "figures": {
            "balance_latency": figure(
                value,
                "ms",
                "fold the account's events out of the whole log",
                scan_ms,
                f"<= {TARGET_MS:g} ms",
                value <= TARGET_MS,
                what="Views.current(ACCOUNTS) + accounts.show, the home open",
                samples=SAMPLES,
                max_ms=max(shown_ms),
                accounts=ACCOUNTS_COUNT,
            ),
        },
        "info": {
            "accounts_rebuild": figure(
                rebuild_s * 1000,
                "ms",
                "the scan",
                scan_ms,
                None,
                None,
                what="rebuild of the accounts view from position 1 (reading every line)",
            ),
        },
        "environment": environment(("msgspec",)),
    }


def _scan(home: Home, account_id: str) -> int:
    """The account's balance folded from its events alone, read out of the whole log."""
    view = AccountsView()
    topics = frozenset(cls.TOPIC for cls in ACCOUNT_EVENTS)
    for position, event in home.views.reader.events(home.ledger, topics=topics):
        if event.account_id == account_id:  # type: ignore[attr-defined]
            view.apply(position, event)
    return view.accounts[account_id].balance_micros
