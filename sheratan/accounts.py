"""Accounts as the CLI and the API show them: amounts parsed and printed in units, an
account's state from the accounts view (a projection, not a scan), its history from the log.

Amounts are kept as integers of a micro-unit (events.accounts); here they are read from and
written as decimal text in units, exactly: "12.5" is 12,500,000 micro-units.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal, InvalidOperation
from typing import Any

from events.accounts import ACCOUNT_EVENTS, MICROS_PER_UNIT, units
from projections.accounts import Account, AccountsView
from sheratan.app import NotFoundError
from sheratan.home import Home
from sheratan.inputs import InvalidInputError
from sheratan.render import to_plain

#: Decimal places an amount may have (one micro-unit).
PLACES = 6
#: The most events ``history`` returns (the newest), so one answer stays bounded.
MAX_HISTORY = 10_000
_TOPICS = frozenset(cls.TOPIC for cls in ACCOUNT_EVENTS)


def parse_amount(text: str, what: str) -> int:
    """Decimal text in units ("12.5") as micro-units; InvalidInputError naming ``what``."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidInputError(f"{what} must be a number of units, not {text!r}") from None
    if not value.is_finite():
        raise InvalidInputError(f"{what} must be a number of units, not {text!r}")
    micros = value * MICROS_PER_UNIT
    if micros != micros.to_integral_value():
        raise InvalidInputError(f"{what} has more than {PLACES} decimal places: {text!r}")
    return int(micros)


def plain(account: Account, holds: int) -> dict[str, Any]:
    """One account for output: amounts in units (exact text) and in micro-units."""
    return {
        "id": account.id,
        "owner": account.owner,
        "balance": units(account.balance_micros),
        "held": units(account.held_micros),
        "available": units(account.available_micros),
        "credited": units(account.credited_micros),
        "settled": units(account.settled_micros),
        "balance_micros": account.balance_micros,
        "held_micros": account.held_micros,
        "available_micros": account.available_micros,
        "open_holds": holds,
        "attempts_settled": account.settled,
        "attempts_released": account.released,
        "opened_at": to_plain(account.opened_at),
    }


def show(view: AccountsView, account_id: str) -> dict[str, Any]:
    account = view.accounts.get(account_id)
    if account is None:
        raise NotFoundError(f"no account {account_id!r}")
    holds = sum(1 for hold in view.holds.values() if hold.account_id == account_id)
    return plain(account, holds)


def listing(view: AccountsView) -> list[dict[str, Any]]:
    holds: dict[str, int] = {}
    for hold in view.holds.values():
        holds[hold.account_id] = holds.get(hold.account_id, 0) + 1
    return [plain(view.accounts[a], holds.get(a, 0)) for a in sorted(view.accounts)]


def history(home: Home, view: AccountsView, account_id: str) -> list[dict[str, Any]]:
    """Every event of the account in log order (its credits and every attempt's charge),
    the newest MAX_HISTORY of them."""
    if account_id not in view.accounts:
        raise NotFoundError(f"no account {account_id!r}")
    rows: deque[dict[str, Any]] = deque(maxlen=MAX_HISTORY)
    for position, event in home.views.reader.events(home.log, topics=_TOPICS):
        if event.account_id != account_id:  # type: ignore[attr-defined]
            continue
        data = to_plain(event)
        data.pop("account_id", None)
        row = {"position": position, "topic": event.TOPIC, "stream": data.pop("originator_id")}
        row["version"] = data.pop("originator_version")
        rows.append({**row, **data})
    return list(rows)


def history_row(row: dict[str, Any]) -> tuple[Any, ...]:
    """A history event as (position, topic, amount, job, attempt, note) for a table."""
    amount = row.get("amount_micros", row.get("cost_micros"))
    note = row.get("reason") or row.get("why") or row.get("worker") or ""
    if "released_micros" in row:
        note = f"released {units(row['released_micros'])}"
    return (
        row["position"],
        row["topic"],
        units(amount) if amount is not None else None,
        row.get("job_id"),
        row.get("attempt"),
        note,
    )
