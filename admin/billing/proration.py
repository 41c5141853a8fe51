"""Proration by days: the charge for part of a period whose whole price is known.

The rule (cumulative rounding). A period ``full`` of ``n`` days costs ``price``; the days of
``full`` are numbered 0 .. n-1, and the part ``[a, b)`` of it (day numbers ``a`` to ``b - 1``) is
charged::

    charge([a, b)) = q(price * b / n) - q(price * a / n)

where ``q`` is :func:`admin.billing.money.quantize` (half up to the currency's minor unit), and
the exact quotients are computed with :mod:`decimal` at 28 significant digits. That is, the
charge is the rounded running total at the part's end minus the rounded running total at its
start. Consequences, all tested:

- Any parts that tile a period sum to ``q(price)`` exactly (the sum telescopes), whatever the
  cut points: the days of a month charged one by one, a plan changed mid-period, a pause, a
  stub plus the rest. A whole period is exactly its (rounded) price.
- A part starting on the period's first day is rounded as a whole, ``q(price * b / n)``: Splynx's
  figures, which round the total, come out the same (200 for 30 days, changed on the 16th: the
  first 15 days cost 100.00, the other 15 are 100.00, not 15 x 6.67 = 100.05).
- Any other part differs from its own rounded total ``q(price * (b - a) / n)`` by at most one
  minor unit, and two parts of the same length may differ by one minor unit (a 40.00 month of
  30 days charges its days 1.33, 1.34, 1.33, 1.33, 1.34, ... : never a displayed "1.33 x 30 =
  39.90").
- Charges are additive over disjoint parts, so leaving paused days out never raises a charge
  (for a price >= 0), and a later credit for some days is exactly what charging them had cost.

Prepaid daily is the same rule with the calendar month as ``full`` and one day as the part: day
``k`` of an ``n``-day month costs ``q(price * k / n) - q(price * (k - 1) / n)``.

Prices are Decimal and may carry more decimals than the currency (numeric(14,4)); only results
are rounded, here, through money.quantize and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from admin.billing.money import ZERO, quantize
from admin.billing.periods import (
    ONE_DAY,
    BillingPeriod,
    Cycle,
    Period,
    PeriodError,
    calendar_month,
    clip,
    first_period,
)


def _running_total(price: Decimal, full: Period, upto: date, currency: str) -> Decimal:
    """The rounded charge for ``full`` from its start up to (not including) ``upto``."""
    return quantize(price * (upto - full.start).days / full.days, currency)


def prorate(price: Decimal, full: Period, part: Period, currency: str) -> Decimal:
    """The charge for ``part`` of ``full``, which costs ``price`` whole (the cumulative rule)."""
    if not full.days or not full.covers(part):
        raise PeriodError(f"{part} is not a part of the non-empty period {full}")
    if not part.days:
        return quantize(ZERO, currency)
    return _running_total(price, full, part.end, currency) - _running_total(price, full, part.start, currency)


def prorate_ranges(price: Decimal, full: Period, ranges: Iterable[Period], currency: str) -> Decimal:
    """The charge for the days of ``ranges`` (merged; clipped to ``full``) of ``full``."""
    return sum((prorate(price, full, r, currency) for r in clip(ranges, full)), quantize(ZERO, currency))


def charge(price: Decimal, period: BillingPeriod, currency: str) -> Decimal:
    """What ``period`` costs: its unpaused days of ``period.full``, which costs ``price`` whole
    (the monthly price times ``period.months`` for recurring periods)."""
    return prorate_ranges(price, period.full, period.active, currency)


def pause_credit(price: Decimal, period: BillingPeriod, pauses: Iterable[Period], currency: str) -> Decimal:
    """What to credit when ``pauses`` come after ``period`` was charged: the charge of its days
    now paused that were not paused already, so that the charge minus this credit is what the
    period costs with the new pauses."""
    return prorate_ranges(price, period.full, (p for a in period.active for p in clip(pauses, a)), currency)


def first_period_charge(monthly_price: Decimal, start: date, cycle: Cycle, currency: str) -> Decimal:
    """The first period's charge: from ``start`` to the next billing day, as a part of the month
    around it (a whole period, at ``months`` times the price, when ``start`` is a billing day)."""
    period = first_period(start, cycle)
    return charge(monthly_price * (period.months or 1), period, currency)


def daily_charge(monthly_price: Decimal, day: date, currency: str) -> Decimal:
    """Prepaid daily: what ``day`` costs, as one day of its calendar month at ``monthly_price``.
    The days of any whole month sum to the monthly price exactly."""
    return prorate(monthly_price, calendar_month(day), Period(day, day + ONE_DAY), currency)


# -- plan change ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ChangeFees:
    """The fees for moving to a dearer plan (``up``) or a cheaper one (``down``)."""

    up: Decimal = ZERO
    down: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class PlanChange:
    """A mid-period plan change, for the old plan's credit note and the new plan's invoice.

    ``used``: the old plan's charge for the days before the change (what the customer keeps
    paying); ``credit``: the old plan's charge for the remaining days, credited; ``charge``: the
    new plan's for those days; ``fee``: the up or down fee. ``used + credit`` is what the old plan
    charged for the period, and ``used + charge`` what the period costs after the change.
    """

    remaining: Period
    used: Decimal
    credit: Decimal
    charge: Decimal
    fee: Decimal


def plan_change(old_price: Decimal, new_price: Decimal, period: BillingPeriod, on: date, currency: str,
                fees: ChangeFees = ChangeFees()) -> PlanChange:
    """A change from ``old_price`` to ``new_price`` (prices of ``period.full``) on ``on``, the new
    plan's first day, inside the charged ``period``: the days ``[on, period.billed.end)`` are
    credited at the old price and charged at the new (paused days neither). A change on the
    period's first day credits all of it. The fee is ``fees.up`` when the new price is higher,
    ``fees.down`` when lower, nothing when equal."""
    if not period.billed.start <= on < period.billed.end:
        raise PeriodError(f"a plan change on {on} is outside the charged {period.billed}")
    remaining = Period(on, period.billed.end)
    kept = [p for a in period.active if (p := a.intersection(Period(period.billed.start, on))) is not None]
    moved = [p for a in period.active if (p := a.intersection(remaining)) is not None]
    fee = fees.up if new_price > old_price else fees.down if new_price < old_price else ZERO
    return PlanChange(
        remaining=remaining,
        used=prorate_ranges(old_price, period.full, kept, currency),
        credit=prorate_ranges(old_price, period.full, moved, currency),
        charge=prorate_ranges(new_price, period.full, moved, currency),
        fee=quantize(fee, currency),
    )
