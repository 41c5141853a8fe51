"""Dunning: when an unpaid customer is blocked and made inactive, and when a payment lifts it. Pure.

Splynx's rules (business.md 1.1, 1.3, 1.4), which lastmile follows:

- an invoice is due ``due_days`` after its date ("payment due (days after billing day, default
  15)"); the customer is blocked ``block_after_due_days`` after that ("blocking period (days after
  due: 'Do not block' / 0-99)"; 0 blocks on the due date itself, None never blocks), and made
  inactive ``deactivate_after_block_days`` after the blocking ("deactivation period (days after
  blocking, default 10, 1-99)");
- "unpaid invoice past *Billing due* -> customer **Blocked** but the service stays active and is
  still billed", "Not paid by the deactivation date -> **Inactive**", "Blocked customer pays ->
  **Active**" (and an Inactive one: "when the customer pays, the duplicate becomes Active");
- blocking needs the balance below the minimum balance too (Splynx's automation: blocking "when
  their deposit is less than minimum deposit allowed"), which is how a negative minimum works as
  a credit limit: with -50, a customer owing 30 past due stays Active;
- prepaid customers are "blocked when the balance reaches the minimum", whatever their invoices;
- "block/deactivation dates move to the next working day if 'block on weekends/holidays' is off":
  weekends, the country's public holidays (the ``holidays`` package) and the ISP's own days.

Nothing here reads the clock: ``today`` is an argument, so the worker, a preview and the tests ask
the same question and get the same answer.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

import holidays

from . import money

#: the longest period (payment due, blocking, deactivation) accepted, in days
MAX_DAYS = 365


class DunningError(ValueError):
    pass


class Action(enum.StrEnum):
    """What dunning does to a customer; the values are admin.customers.lifecycle's action names."""

    NONE = "none"
    BLOCK = "block"  # active -> blocked
    DEACTIVATE = "deactivate"  # active or blocked -> inactive
    UNBLOCK = "unblock"  # blocked -> active (paid)
    ACTIVATE = "activate"  # inactive -> active (paid)


@dataclass(frozen=True, slots=True)
class Settings:
    """A customer's dunning settings (its billing settings and its partner's dunning policy).

    ``min_balance`` is the balance the customer may go down to: 0 by default; negative, a credit
    limit. ``block_on_non_working_days`` False moves blocking and deactivation off Saturdays,
    Sundays, the public holidays of ``holiday_country`` (ISO 3166 code, ``holiday_subdivision``
    for a state or region's own) and ``isp_days``, to the next working day."""

    due_days: int = 15
    block_after_due_days: int | None = 0
    deactivate_after_block_days: int | None = 10
    min_balance: Decimal = money.ZERO
    prepaid: bool = False
    block_on_non_working_days: bool = False
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    isp_days: frozenset[dt.date] = frozenset()

    def __post_init__(self) -> None:
        for name in ("due_days", "block_after_due_days", "deactivate_after_block_days"):
            value = getattr(self, name)
            if value is None and name != "due_days":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_DAYS:
                raise DunningError(f"{name} must be a number of days from 0 to {MAX_DAYS}, not {value!r}")
        min_balance: object = self.min_balance  # a float would compare, and wrongly
        if not isinstance(min_balance, Decimal) or not min_balance.is_finite():
            raise DunningError(f"min_balance must be a Decimal amount, not {self.min_balance!r}")
        if self.holiday_subdivision is not None and self.holiday_country is None:
            raise DunningError(f"holiday_subdivision {self.holiday_subdivision!r} needs a holiday_country")
        if self.holiday_country is not None:
            _public_holidays(self.holiday_country, self.holiday_subdivision, 2000)  # raises for unknown ones


@functools.cache
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[dt.date]:
    try:
        days = holidays.country_holidays(country, subdiv=subdivision, years=year)
    except NotImplementedError as err:
        where = country if subdivision is None else f"{country}-{subdivision}"
        raise DunningError(f"no public holidays are known for {where!r} ({err})") from None
    return frozenset(days)


def is_working_day(day: dt.date, settings: Settings) -> bool:
    """False on Saturdays, Sundays, the country's public holidays and the ISP's own days."""
    if day.weekday() >= 5 or day in settings.isp_days:
        return False
    country = settings.holiday_country
    return country is None or day not in _public_holidays(country, settings.holiday_subdivision, day.year)


def next_working_day(day: dt.date, settings: Settings) -> dt.date:
    """``day`` when it is a working day, else the first working day after it."""
    for _ in range(MAX_DAYS + 1):
        if is_working_day(day, settings):
            return day
        day += dt.timedelta(days=1)
    raise DunningError(f"no working day in the year from {day - dt.timedelta(days=MAX_DAYS + 1)}")


def _action_day(day: dt.date, settings: Settings) -> dt.date:
    """The day blocking or deactivation planned for ``day`` happens."""
    return day if settings.block_on_non_working_days else next_working_day(day, settings)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When an unpaid invoice is due, blocks and deactivates (None: it never does)."""

    due_on: dt.date
    block_on: dt.date | None
    deactivate_on: dt.date | None


def schedule(invoice_date: dt.date, settings: Settings, due_on: dt.date | None = None) -> Schedule:
    """The dates of an invoice dated ``invoice_date`` (``due_on`` when the invoice carries its own).

    The due date itself is never moved (it is printed on the invoice); the deactivation period
    counts from the day the customer is actually blocked, so it is never shortened by a move."""
    due = due_on if due_on is not None else invoice_date + dt.timedelta(days=settings.due_days)
    if settings.block_after_due_days is None:
        return Schedule(due, None, None)
    block = _action_day(due + dt.timedelta(days=settings.block_after_due_days), settings)
    if settings.deactivate_after_block_days is None:
        return Schedule(due, block, None)
    deactivate = _action_day(block + dt.timedelta(days=settings.deactivate_after_block_days), settings)
    return Schedule(due, block, deactivate)


@dataclass(frozen=True, slots=True)
class Unpaid:
    """An unpaid (or partly paid) invoice that counts for dunning: its date and its due date."""

    issued_on: dt.date
    due_on: dt.date | None = None


def decide(today: dt.date, customer_status: str, debts_overdue: Iterable[Unpaid], balance: Decimal,
           settings: Settings, *, blocked_on: dt.date | None = None, by_dunning: bool = True) -> Action:
    """What dunning does to a customer today.

    ``debts_overdue``: the customer's unpaid invoices that count (those not yet past their
    blocking date are passed too and simply do not block). ``balance``: the ledger's balance
    (negative: owed). ``blocked_on``: the day a prepaid customer was blocked, from which its
    deactivation counts (recurring customers' dates come from their invoices). ``by_dunning``
    False when staff set the current Blocked/Inactive status by hand: a payment never lifts it.

    On a non-working day with ``block_on_non_working_days`` off nobody is blocked or deactivated
    (the next working day catches up); lifting a block is done any day, at once."""
    if not isinstance(balance, Decimal):
        raise DunningError(f"balance must be a Decimal, not {type(balance).__name__}")
    if customer_status not in ("new", "active", "blocked", "inactive", "deleted"):
        raise DunningError(f"unknown customer status {customer_status!r}")
    if customer_status in ("new", "deleted"):
        return Action.NONE
    if settings.prepaid:
        owes = balance <= settings.min_balance
        block_due = owes and settings.block_after_due_days is not None
        deactivate_due = block_due and _prepaid_deactivation_due(today, blocked_on, customer_status, settings)
    else:
        owes = balance < settings.min_balance
        dates = [schedule(d.issued_on, settings, d.due_on) for d in debts_overdue]
        block_due = owes and any(s.block_on is not None and s.block_on <= today for s in dates)
        deactivate_due = owes and any(s.deactivate_on is not None and s.deactivate_on <= today for s in dates)
    may_act = settings.block_on_non_working_days or is_working_day(today, settings)
    if customer_status == "inactive":
        return Action.ACTIVATE if by_dunning and not block_due else Action.NONE
    if deactivate_due:
        return Action.DEACTIVATE if may_act else Action.NONE
    if customer_status == "active":
        return Action.BLOCK if block_due and may_act else Action.NONE
    # blocked
    return Action.UNBLOCK if by_dunning and not block_due else Action.NONE


def _prepaid_deactivation_due(today: dt.date, blocked_on: dt.date | None, status: str, settings: Settings) -> bool:
    if status != "blocked" or blocked_on is None or settings.deactivate_after_block_days is None:
        return False
    return _action_day(blocked_on + dt.timedelta(days=settings.deactivate_after_block_days), settings) <= today
