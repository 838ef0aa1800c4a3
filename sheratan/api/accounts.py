"""Accounts over HTTP: the same services and views as ``sheratan account …``.

Amounts travel as decimal text in units ("12.5", exact), as the CLI takes and prints them,
and also in micro-units where the CLI's ``--json`` has them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State

from sheratan import accounts
from sheratan.api.jobs import BUDGET_PATTERN
from sheratan.api.paging import Cursor, Limit, page
from sheratan.api.routing import Rule, home_of, problems
from sheratan.inputs import MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS
from sheratan.streams import account_stream
from sheratan.views import ACCOUNTS

AccountId = Annotated[str, Rule(min_length=1, max_length=MAX_NAME_CHARS, pattern=r"\S")]
Amount = Annotated[str, Rule(max_length=32, pattern=BUDGET_PATTERN)]


class NewAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An account to open (``sheratan account open ID --owner … --balance N``)."""

    id: AccountId
    owner: Annotated[str, Rule(max_length=MAX_NAME_CHARS)] = ""
    balance: Amount = "0"


class Credit(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A credit (``sheratan account credit ID AMOUNT --reason …``)."""

    amount: Amount
    reason: Annotated[str, Rule(max_length=MAX_DESCRIPTION_CHARS)] = ""


class Account(msgspec.Struct, kw_only=True):
    """One account as ``sheratan account show --json`` prints it."""

    id: str
    owner: str
    balance: str
    held: str
    available: str
    credited: str
    settled: str
    balance_micros: int
    held_micros: int
    available_micros: int
    open_holds: int
    attempts_settled: int
    attempts_released: int
    opened_at: datetime


class AccountPage(msgspec.Struct):
    items: list[Account]
    next_cursor: str | None


def _account(plain: dict[str, Any]) -> Account:
    return msgspec.convert(plain, Account)


TAGS = ["accounts"]


class AccountsController(Controller):
    path = "/api/accounts"
    tags = TAGS

    @post("/", sync_to_thread=True, responses=problems(400, 409, 429))
    def open_account(self, state: State, data: NewAccount) -> Account:
        """Open an account (201); its opening balance, if any, is its first credit."""
        home = home_of(state)
        balance = accounts.parse_amount(data.balance, "balance")
        home.app.open_account(data.id, data.owner, balance)
        return _account(accounts.show(home.views.current(ACCOUNTS), data.id))

    @get("/", sync_to_thread=True, responses=problems(400))
    def list_accounts(self, state: State, limit: Limit = 100, cursor: Cursor = None) -> AccountPage:
        """Accounts, oldest first, a page at a time."""
        listed = [_account(a) for a in accounts.listing(home_of(state).views.current(ACCOUNTS))]
        items, after = page(listed, lambda a: (a.opened_at, account_stream(a.id)), cursor, limit)
        return AccountPage(items, after)

    @get("/{account_id:str}", sync_to_thread=True, responses=problems(404))
    def show_account(self, state: State, account_id: str) -> Account:
        """One account: balance, held and available funds, attempts settled and released."""
        return _account(accounts.show(home_of(state).views.current(ACCOUNTS), account_id))

    @post("/{account_id:str}/credits", sync_to_thread=True, responses=problems(400, 404, 429))
    def credit_account(self, state: State, account_id: str, data: Credit) -> Account:
        """Credit an account (201 with the account after)."""
        home = home_of(state)
        home.app.credit_account(
            account_id, accounts.parse_amount(data.amount, "amount"), data.reason
        )
        return _account(accounts.show(home.views.current(ACCOUNTS), account_id))

    @get("/{account_id:str}/history", sync_to_thread=True, responses=problems(404))
    def account_history(self, state: State, account_id: str) -> list[dict[str, Any]]:
        """The account's events in log order: its credits and every attempt's hold and
        settlement or release (the newest 1,000)."""
        home = home_of(state)
        return accounts.history(home, home.views.current(ACCOUNTS), account_id)


ACCOUNT_ROUTES = [AccountsController]
