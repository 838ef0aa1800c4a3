"""Accounts: who pays for jobs, what was credited, and the charge of every attempt.

Amounts are integers of a micro-unit (``*_micros``; 1 unit = ``MICROS_PER_UNIT``), so a
balance is an exact sum whatever the order of the fold; costs measured as floats (a worker's
``cost_hint``, ``metrics.cost``) are rounded to a micro-unit once, where they are charged.

An account's own stream (``account_stream``) holds its opening and its credits. Each attempt
of a paid job is charged on a stream of its own (``charge_stream(account, job, attempt)``):
version 1 is the hold made with the lease, version 2 the settlement or the release. A second
settle or release of one attempt is a second version 2, which the store refuses
(IntegrityError): an attempt is charged at most once, whoever races to settle it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar
from uuid import UUID

from events import Event

#: Micro-units in one unit of account.
MICROS_PER_UNIT = 1_000_000


def to_micros(amount: float) -> int:
    """A cost or amount in units, as whole micro-units (rounded half to even)."""
    return round(amount * MICROS_PER_UNIT)


def units(micros: int) -> str:
    """Micro-units as exact decimal text in units, no trailing zeros ("12.5", "0.000001")."""
    text = f"{Decimal(micros).scaleb(-6):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class AccountOpened(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "account.opened"

    account_id: str
    owner: str = ""


class AccountCredited(Event, frozen=True, kw_only=True):
    TOPIC: ClassVar[str] = "account.credited"

    account_id: str
    amount_micros: int
    reason: str = ""


class AccountHeld(Event, frozen=True, kw_only=True):
    """The cost estimate of an attempt, held when the attempt is leased (version 1 of its
    charge stream)."""

    TOPIC: ClassVar[str] = "account.held"

    account_id: str
    job_id: UUID
    attempt: int
    amount_micros: int
    worker: str
    decision_id: UUID | None = None


class AccountSettled(Event, frozen=True, kw_only=True):
    """A completed attempt's actual cost charged; the rest of its hold released."""

    TOPIC: ClassVar[str] = "account.settled"

    account_id: str
    job_id: UUID
    attempt: int
    cost_micros: int
    released_micros: int


class AccountReleased(Event, frozen=True, kw_only=True):
    """An attempt that did not complete (failed, timed out, cancelled, quarantined): its hold
    is released and nothing is charged."""

    TOPIC: ClassVar[str] = "account.released"

    account_id: str
    job_id: UUID
    attempt: int
    amount_micros: int
    why: str


ACCOUNT_EVENTS = (AccountOpened, AccountCredited, AccountHeld, AccountSettled, AccountReleased)
