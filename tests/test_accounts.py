"""Accounts: the fold (a property), the CLI, and charging through a real dispatcher.

The dispatcher here runs in this process (``dispatch --until-idle``) with local workers and
process workers that no daemon serves (their attempts stay leased, so a hold can be seen).
Issue 11's run with dispatcher and worker processes is tests/test_accounts_acceptance.py.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from cli_helpers import as_json, invoke, log_digest, refused, refused_unrecorded
from eventsourcing.persistence import IntegrityError
from hypothesis import given
from hypothesis import strategies as st

from events import utc_now
from events.accounts import (
    AccountCredited,
    AccountHeld,
    AccountOpened,
    AccountReleased,
    AccountSettled,
)
from events.jobs import JobResultLate
from projections.accounts import AccountsView
from sheratan.home import Home
from sheratan.views import ACCOUNTS
from sheratan.workers.outcome import Outcome
from sheratan.workers.report import outcome_event

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def home(any_home: Path) -> Path:
    """Every test here with a home runs on both stores, embedded and PostgreSQL."""
    return any_home


def test_open_credit_show_list_and_history(home: Path) -> None:
    opened = as_json(home, "account", "open", "acme", "--owner", "ACME", "--balance", "10")
    assert (opened["balance"], opened["held"], opened["owner"]) == ("10", "0", "ACME")
    credited = as_json(home, "account", "credit", "acme", "2.500001", "--reason", "top-up")
    assert credited["balance"] == "12.500001" and credited["balance_micros"] == 12_500_001
    as_json(home, "account", "open", "empty")
    listed = as_json(home, "account", "list")
    assert [(a["id"], a["balance"], a["available"]) for a in listed] == [
        ("acme", "12.500001", "12.500001"),
        ("empty", "0", "0"),
    ]
    history = as_json(home, "account", "history", "acme")
    assert [(h["topic"], h.get("amount_micros"), h.get("reason")) for h in history] == [
        ("account.opened", None, None),
        ("account.credited", 10_000_000, "opening balance"),
        ("account.credited", 2_500_001, "top-up"),
    ]
    shown = invoke(home, "account", "show", "acme").stdout
    assert "12.500001" in shown and "held" in shown
    assert "top-up" in invoke(home, "account", "history", "acme").stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("account", "open", "acme"), "account 'acme' already exists"),
        (("account", "open", "x", "--balance", "-1"), "balance must be at least 0"),
        (("account", "open", "x", "--balance", "1.0000001"), "more than 6 decimal places"),
        (("account", "open", "x", "--balance", "ten"), "--balance must be a number of units"),
        (("account", "open", "x", "--balance", "inf"), "--balance must be a number of units"),
        (("account", "open", " "), "account id must be a non-empty string"),
        (("account", "credit", "acme", "0"), "amount must be above 0"),
        (("account", "credit", "nobody", "1"), "no account 'nobody'"),
        (("account", "show", "nobody"), "no account 'nobody'"),
        (("account", "history", "nobody"), "no account 'nobody'"),
        (("job", "create", "noop", "--payer", "nobody"), "no account 'nobody' to pay for"),
        (("job", "create", "noop", "--payer", "acme", "--budget", "0"), "budget must be above"),
    ],
)
def test_bad_account_input_is_refused_with_one_line_and_records_nothing(
    home: Path, args: tuple[str, ...], needle: str
) -> None:
    invoke(home, "account", "open", "acme")
    before = log_digest(home)
    refused(home, *args, needle=needle)
    assert log_digest(home) == before


def test_a_paid_attempt_is_held_settled_and_released_and_why_shows_it(
    home: Path, tmp_path: Path
) -> None:
    invoke(home, "account", "open", "acme", "--balance", "10")
    invoke(home, "account", "open", "poor", "--balance", "1")
    profile = json.dumps({"cost": 1.5})
    invoke(
        home,
        "worker",
        "register",
        "lw",
        "--kinds",
        "noop,file_read",
        "--transport",
        "local",
        "--profile",
        profile,
    )
    paid = job(home, "noop", "--payer", "acme")
    failing = job(
        home,
        "file_read",
        "--payload",
        '{"path": "missing.txt"}',
        "--payer",
        "acme",
        "--max-retries",
        "0",
    )
    broke = job(home, "noop", "--payer", "poor")
    over_budget = job(home, "noop", "--payer", "acme", "--budget", "1")
    as_json(home, "dispatch", "--until-idle", "--workspace", str(tmp_path))

    acme = as_json(home, "account", "show", "acme")
    assert (acme["balance"], acme["held"], acme["open_holds"]) == ("10", "0", 0)
    assert (acme["attempts_settled"], acme["attempts_released"]) == (1, 1)
    charges = {
        h["job_id"]: h for h in as_json(home, "account", "history", "acme")[2:] if h["version"] == 2
    }
    assert charges[paid]["topic"] == "account.settled"
    assert (charges[paid]["cost_micros"], charges[paid]["released_micros"]) == (0, 1_500_000)
    assert charges[failing]["topic"] == "account.released" and charges[failing]["why"] == "failed"

    settled = as_json(home, "why", "job", paid)["decisions"][0]["charge"]
    assert (settled["status"], settled["held_micros"], settled["account_id"]) == (
        "settled",
        1_500_000,
        "acme",
    )
    assert (
        "charge: held 1.5 of account acme for attempt 1; settled 0, released 1.5"
        in invoke(home, "why", "job", paid).stdout
    )
    for job_id, reason in [
        (broke, "insufficient funds: account poor has 1 available, worker lw needs 1.5 held"),
        (over_budget, "worker lw costs 1.5, the job's budget is 1"),
    ]:
        decision = as_json(home, "why", "job", job_id)["decisions"][0]
        assert decision["chosen"]["type"] == "ABORT" and "charge" not in decision
        gates = decision["alternatives"][0]["gates"]
        assert {"gate": "budget", "passed": False, "reason": reason} in gates
        assert as_json(home, "job", "show", job_id)["status"] == "quarantined"
    assert as_json(home, "account", "show", "poor")["held"] == "0"
    assert as_json(home, "replay", "--exact")["drift"] == {"major": 0, "minor": 0, "none": 5}


def test_a_cancelled_attempt_releases_its_hold_and_a_second_settle_is_refused(
    home: Path, tmp_path: Path
) -> None:
    invoke(home, "account", "open", "acme", "--balance", "10")
    opened = Home.open(home)
    try:
        opened.app.register_worker("pw", ("noop",), "process", cost_hint=2.25)
    finally:
        opened.close()
    leased = job(home, "noop", "--payer", "acme")
    as_json(home, "dispatch", "--until-idle", "--workspace", str(tmp_path))
    held = as_json(home, "account", "show", "acme")
    assert (held["balance"], held["held"], held["available"], held["open_holds"]) == (
        "10",
        "2.25",
        "7.75",
        1,
    )
    still = as_json(home, "why", "job", leased)["decisions"][0]["charge"]
    assert still["status"] == "held"

    invoke(home, "job", "cancel", leased)
    as_json(home, "dispatch", "--until-idle", "--workspace", str(tmp_path))
    released = as_json(home, "account", "show", "acme")
    assert (released["balance"], released["held"], released["attempts_released"]) == ("10", "0", 1)
    closing = as_json(home, "account", "history", "acme")[-1]
    assert (closing["topic"], closing["why"], closing["version"]) == (
        "account.released",
        "cancelled",
        2,
    )

    closed: dict[str, Any] = {
        "originator_id": UUID(closing["stream"]),
        "originator_version": 2,
        "timestamp": NOW,
        "account_id": "acme",
        "job_id": UUID(leased),
        "attempt": 1,
    }
    opened = Home.open(home)
    try:
        for second in (
            AccountSettled(**closed, cost_micros=1, released_micros=0),
            AccountReleased(**closed, amount_micros=1, why="again"),
        ):
            with pytest.raises(IntegrityError):
                opened.app.save(second)
        assert opened.views.current(ACCOUNTS).accounts["acme"].released == 1
    finally:
        opened.close()


def test_a_late_result_settles_nothing(home: Path, tmp_path: Path) -> None:
    invoke(home, "account", "open", "acme", "--balance", "10")
    opened = Home.open(home)
    try:
        opened.app.register_worker("pw", ("noop",), "process", cost_hint=1.0)
    finally:
        opened.close()
    late = job(home, "noop", "--payer", "acme", "--timeout", "0.2", "--max-retries", "0")
    as_json(home, "dispatch", "--until-idle", "--workspace", str(tmp_path))
    time.sleep(0.3)  # the lease expires; no sweep has seen it yet
    opened = Home.open(home)
    try:
        leased = opened.app.get_job(UUID(late))
        result = outcome_event(leased, "pw", 1, Outcome(True, 5.0, cost=1.0, result={}), utc_now())
        assert isinstance(result, JobResultLate)
        opened.app.save(result)
    finally:
        opened.close()
    as_json(home, "dispatch", "--until-idle", "--workspace", str(tmp_path))
    history = as_json(home, "account", "history", "acme")
    assert [(h["topic"], h.get("why")) for h in history[2:]] == [
        ("account.held", None),
        ("account.released", "timed_out"),
    ]
    shown = as_json(home, "account", "show", "acme")
    assert (shown["balance"], shown["held"], shown["attempts_settled"]) == ("10", "0", 0)


def job(home: Path, kind: str, *args: str) -> str:
    return str(as_json(home, "job", "create", kind, *args)["id"])


#: One step of an account's life: a credit, a hold, or the settlement or release of the
#: open hold at an index (taken modulo the open holds; skipped when none is open).
_steps = st.one_of(
    st.tuples(st.just("credit"), st.integers(1, 10**12)),
    st.tuples(st.just("hold"), st.integers(0, 10**9)),
    st.tuples(st.just("settle"), st.integers(0, 50), st.integers(0, 2 * 10**9)),
    st.tuples(st.just("release"), st.integers(0, 50)),
)


@given(st.lists(_steps, max_size=60))
def test_the_fold_is_credits_minus_settled_costs_with_open_holds_held(steps: list[Any]) -> None:
    view = AccountsView()
    events: list[Any] = [
        AccountOpened(originator_id=uuid4(), originator_version=1, timestamp=NOW, account_id="a")
    ]
    credits = settled = 0
    open_holds: dict[tuple[UUID, int], int] = {}
    for step in steps:
        kind = step[0]
        if kind == "credit":
            credits += step[1]
            events.append(AccountCredited(timestamp=NOW, account_id="a", amount_micros=step[1]))
        elif kind == "hold":
            key = (uuid4(), 1)
            open_holds[key] = step[1]
            events.append(
                AccountHeld(
                    originator_id=uuid4(),
                    timestamp=NOW,
                    account_id="a",
                    job_id=key[0],
                    attempt=1,
                    amount_micros=step[1],
                    worker="w",
                )
            )
        elif open_holds:
            key = list(open_holds)[step[1] % len(open_holds)]
            amount = open_holds.pop(key)
            if kind == "settle":
                settled += step[2]
                events.append(
                    AccountSettled(
                        timestamp=NOW,
                        account_id="a",
                        job_id=key[0],
                        attempt=1,
                        cost_micros=step[2],
                        released_micros=max(0, amount - step[2]),
                    )
                )
            else:
                events.append(
                    AccountReleased(
                        timestamp=NOW,
                        account_id="a",
                        job_id=key[0],
                        attempt=1,
                        amount_micros=amount,
                        why="failed",
                    )
                )
    for position, event in enumerate(events, 1):
        view.apply(position, event)
    account = view.accounts["a"]
    assert account.balance_micros == credits - settled
    assert account.held_micros == sum(open_holds.values())
    assert account.available_micros == credits - settled - sum(open_holds.values())
    assert {key: hold.amount_micros for key, hold in view.holds.items()} == open_holds
    reloaded = ACCOUNTS.load(ACCOUNTS.dump(view))
    assert reloaded.accounts == view.accounts and reloaded.holds == view.holds


def test_a_paid_simulation_charges_every_attempt_once(home: Path) -> None:
    """``simulate --payer``: each attempt of its jobs is held and then settled or released,
    once, and the balance is the credit minus the completed attempts' costs."""
    refused_unrecorded(
        home, "simulate", "--jobs", "5", "--payer", "nobody", needle="no account 'nobody'"
    )
    as_json(home, "account", "open", "lab", "--balance", "100000")
    report = as_json(home, "simulate", "--jobs", "300", "--seed", "3", "--payer", "lab")
    assert report["jobs"] == 300
    shown = as_json(home, "account", "show", "lab")
    rows = json.loads(
        invoke(
            home,
            "sql",
            "select count(*) as n, count(distinct job_id || ':' || attempt) as attempts, "
            "sum(closings) as closings, sum(cost_micros) filter (where status = 'settled') "
            "as cost, (select count(*) from events where topic = 'job.dispatched') as leased "
            "from charges",
            "--json",
        ).stdout
    )[0]
    assert rows["n"] == rows["attempts"] == rows["closings"] == rows["leased"] >= 300
    assert shown["attempts_settled"] == report["completed"] > 0
    assert shown["attempts_released"] == rows["leased"] - report["completed"]
    assert shown["held_micros"] == 0
    assert shown["balance_micros"] == 100_000 * 10**6 - rows["cost"]
