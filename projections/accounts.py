"""Accounts folded from their events: balance, held amount, and the open hold of each attempt.

``balance`` is what was credited minus the costs settled; ``held`` the sum of the holds not
yet settled or released; ``available`` = balance - held is what a new hold may take. Each
open hold is kept by (job, attempt) until its settlement or release, so the dispatcher that
sees the attempt end knows what to settle, from the log alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

import msgspec

from events import Event
from events.accounts import (
    ACCOUNT_EVENTS,
    AccountCredited,
    AccountHeld,
    AccountOpened,
    AccountReleased,
    AccountSettled,
)


class Account(msgspec.Struct, kw_only=True):
    """One account as its events made it (mutable: the fold updates it in place)."""

    id: str
    owner: str
    version: int
    opened_at: datetime
    credited_micros: int = 0
    settled_micros: int = 0
    held_micros: int = 0
    #: Attempts charged (settled) and released.
    settled: int = 0
    released: int = 0

    @property
    def balance_micros(self) -> int:
        return self.credited_micros - self.settled_micros

    @property
    def available_micros(self) -> int:
        return self.balance_micros - self.held_micros


class Hold(msgspec.Struct, frozen=True, kw_only=True):
    """An attempt's open hold, on its charge stream (version 1)."""

    account_id: str
    job_id: UUID
    attempt: int
    amount_micros: int
    stream: UUID


class AccountsView:
    """Every account by id and every open hold by (job, attempt)."""

    FOLDS: ClassVar[frozenset[type[Event]]] = frozenset(ACCOUNT_EVENTS)

    def __init__(self) -> None:
        self.position = 0
        self.accounts: dict[str, Account] = {}
        self.holds: dict[tuple[UUID, int], Hold] = {}

    def apply(self, position: int, event: Event) -> None:
        kind = type(event)
        if kind is AccountOpened:
            opened: AccountOpened = event  # type: ignore[assignment]
            self.accounts[opened.account_id] = Account(
                id=opened.account_id,
                owner=opened.owner,
                version=opened.originator_version,
                opened_at=opened.timestamp,
            )
        elif kind is AccountCredited:
            credited: AccountCredited = event  # type: ignore[assignment]
            account = self.accounts[credited.account_id]
            account.credited_micros += credited.amount_micros
            account.version = credited.originator_version
        elif kind is AccountHeld:
            held: AccountHeld = event  # type: ignore[assignment]
            self.accounts[held.account_id].held_micros += held.amount_micros
            self.holds[(held.job_id, held.attempt)] = Hold(
                account_id=held.account_id,
                job_id=held.job_id,
                attempt=held.attempt,
                amount_micros=held.amount_micros,
                stream=held.originator_id,
            )
        elif kind is AccountSettled or kind is AccountReleased:
            hold = self.holds.pop((event.job_id, event.attempt))  # type: ignore[attr-defined]
            account = self.accounts[hold.account_id]
            account.held_micros -= hold.amount_micros
            if kind is AccountSettled:
                account.settled_micros += event.cost_micros  # type: ignore[attr-defined]
                account.settled += 1
            else:
                account.released += 1
        self.position = position

    def summary(self) -> dict[str, int]:
        return {"accounts": len(self.accounts), "open_holds": len(self.holds)}
