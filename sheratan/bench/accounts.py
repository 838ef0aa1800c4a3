"""The accounts benchmark: the balance of one account on a large log, from the projection.

Workload: a fresh home whose log holds ``events`` events: job events (five per job,
``sheratan.bench.store.encode_jobs``) with, every ``JOBS_PER_CHARGE`` jobs, one paid attempt's
hold and settlement on one of ``ACCOUNTS`` accounts (opened and credited first). The figure:

- ``balance_latency``: ``account show``'s service path (``Views.current(ACCOUNTS)``: load the
  saved view, check its position's chain hash, fold nothing new; then ``accounts.show``) in
  ms, median over ``SAMPLES`` calls with the home open (target: at most 2 ms), against a scan:
  folding that account's events out of the whole log (what it would cost without the view).
"""

from __future__ import annotations

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
from sheratan.home import HOME_FORMAT, MARKER, Home, HomeMarker
from sheratan.store.files import write_durably
from sheratan.store.recorders import JsonlApplicationRecorder
from sheratan.streams import account_stream, charge_stream
from sheratan.views import ACCOUNTS

ACCOUNTS_COUNT = 1_000
#: One paid attempt (a hold and its settlement) per this many jobs of the log.
JOBS_PER_CHARGE = 10
JOBS_PER_SAVE = 1_000
SAMPLES = 101
TARGET_MS = 2.0
_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run_accounts_bench(
    *, events: int, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    say = progress or (lambda _message: None)
    with tempfile.TemporaryDirectory(prefix="sheratan-bench-accounts-") as folder:
        home_path = Path(folder) / "home"
        say(f"generating a log of {events:,} events with paid attempts")
        generate(home_path, events)
        home = Home(home_path)
        try:
            return _measure(home, say)
        finally:
            home.close()
            shutil.rmtree(home_path, ignore_errors=True)


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
