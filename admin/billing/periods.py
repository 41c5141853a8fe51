"""Billing periods: which days a charge covers, for recurring and prepaid billing.

Every range here is a half-open :class:`Period` ``[start, end)`` of dates: ``start`` is the first
day covered, ``end`` the first day *not* covered, so consecutive periods share a boundary and a
period's length in days is ``end - start``. A service runs over ``[start, end)`` too: ``end`` is
the first day it no longer runs (a service whose last day is 15 November has ``end`` 16 November);
``end=None`` is a service that has not ended.

Recurring billing (:func:`periods_to_bill`) follows a :class:`Cycle`: a billing day 1-28 (28 at
most so that every month has it; :func:`billing_day_of` turns a customer's creation date into one)
and a period of 1-12 months. Billing goes along a chain: it starts at the service's start (or at
``billed_until``, the end of what was billed already) and each step bills up to the next boundary:

- from a date on the billing day, a whole period of ``months`` months (1 April -> 1 May, or
  1 April -> 1 April next year for 12 months);
- from any other date, a *stub* up to the next billing day (15 March -> 1 April), priced as a part
  of the one-month period around it ([1 March, 1 April)): this is the prorated first period, and
  it also realigns billing after the billing day was changed.

The last period of an ended service is cut at its ``end``. A run on ``run_date`` bills, in
advance, every period that starts on or before ``run_date`` (a run on the billing day bills the
period starting that day); in arrears, every period that has ended by ``run_date`` (that is, its
``end`` is on or before ``run_date``: a run on 1 May bills April). Catching up (nothing was billed
for months) returns every period due, in order.

Pauses (vacations) do not move periods: a period keeps its place and carries the paused days it
contains, which proration leaves out of the charge.

Prepaid billing: :func:`prepaid_days_to_charge` (daily: each day a one-day period of its
calendar month, charged in advance, a run charging every day up to and including ``run_date``) and
:func:`prepaid_periods_to_charge` (custom: a month, or N days, counted from the service's start).

No I/O and no clock: the run's date comes in as an argument.
"""

from __future__ import annotations

import calendar
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

ONE_DAY = timedelta(days=1)
MAX_BILLING_DAY = 28
MAX_MONTHS = 12


class PeriodError(ValueError):
    pass


class Timing(enum.StrEnum):
    """When a recurring period is billed: at its start (Splynx "prepaid" mode) or after its end."""

    IN_ADVANCE = "in_advance"
    IN_ARREARS = "in_arrears"


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """The dates ``start <= d < end``; empty when ``start == end``."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise PeriodError(f"a period cannot end ({self.end}) before it starts ({self.start})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day < self.end

    def covers(self, other: Period) -> bool:
        """Whether every day of ``other`` is in this period."""
        return self.start <= other.start and other.end <= self.end

    def intersection(self, other: Period) -> Period | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Period(start, end) if start < end else None


@dataclass(frozen=True, slots=True)
class Cycle:
    """A customer's recurring cycle: periods of ``months`` months from billing day to billing day."""

    billing_day: int
    months: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.billing_day <= MAX_BILLING_DAY:
            raise PeriodError(f"billing day {self.billing_day} is not 1-{MAX_BILLING_DAY}")
        if not 1 <= self.months <= MAX_MONTHS:
            raise PeriodError(f"a period of {self.months} months is not 1-{MAX_MONTHS}")


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """One charge's period.

    ``billed`` is the part charged, inside ``full``, the period whose price the charge is a part
    of (they are equal for a whole period; ``billed`` is shorter for the prorated first stub and
    for the last period of an ended service). ``months`` is how many months ``full`` spans, so
    that its price is the monthly price times ``months``; ``None`` for a prepaid period of N days,
    whose price is the plan's price for that period. ``paused`` are the paused days inside
    ``billed``, merged and in order; they are not charged.
    """

    billed: Period
    full: Period
    months: int | None
    paused: tuple[Period, ...] = ()

    def __post_init__(self) -> None:
        if not self.billed.days or not self.full.covers(self.billed):
            raise PeriodError(f"{self.billed} is not a non-empty part of {self.full}")
        if any(not self.billed.covers(p) for p in self.paused) or merge(self.paused) != self.paused:
            raise PeriodError(f"pauses {self.paused} are not merged ranges inside {self.billed}")

    @property
    def active(self) -> tuple[Period, ...]:
        """The charged ranges: ``billed`` without the pauses."""
        return subtract(self.billed, self.paused)

    @property
    def charged_days(self) -> int:
        return self.billed.days - sum(p.days for p in self.paused)


# -- dates ----------------------------------------------------------------------------------------

def add_months(day: date, months: int) -> date:
    """``day`` moved by ``months`` (may be negative), its day of month clamped to the month's last
    (31 January + 1 month = 28 or 29 February)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def days_in_month(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def calendar_month(day: date) -> Period:
    """The calendar month around ``day``, as [1st, 1st of next month)."""
    first = day.replace(day=1)
    return Period(first, add_months(first, 1))


def billing_day_of(created: date) -> int:
    """The billing day "the customer's creation date" gives: its day of month, 28 at most."""
    return min(created.day, MAX_BILLING_DAY)


def billing_date_on_or_before(day: date, billing_day: int) -> date:
    """The last date on or before ``day`` that falls on ``billing_day``."""
    if day.day >= billing_day:
        return day.replace(day=billing_day)
    return add_months(day.replace(day=billing_day), -1)


def next_billing_date(day: date, billing_day: int) -> date:
    """The first date strictly after ``day`` that falls on ``billing_day``."""
    if day.day < billing_day:
        return day.replace(day=billing_day)
    return add_months(day.replace(day=billing_day), 1)


def period_containing(day: date, cycle: Cycle, anchor: date | None = None) -> Period:
    """The period of ``cycle`` around ``day``, in the grid of periods that starts on ``anchor``.

    With one-month periods the grid is fixed by the billing day and ``anchor`` may be left out;
    with longer ones ``anchor`` (a date on the billing day: a period start, such as the first
    billing date of the service) says which months start periods. It may lie after ``day``.
    """
    if anchor is None:
        if cycle.months != 1:
            raise PeriodError(f"periods of {cycle.months} months need an anchor")
        anchor = day.replace(day=cycle.billing_day)
    if anchor.day != cycle.billing_day:
        raise PeriodError(f"anchor {anchor} is not on billing day {cycle.billing_day}")
    on_or_before = billing_date_on_or_before(day, cycle.billing_day)
    elapsed = (on_or_before.year - anchor.year) * 12 + on_or_before.month - anchor.month
    start = add_months(anchor, (elapsed // cycle.months) * cycle.months)
    return Period(start, add_months(start, cycle.months))


def next_period_start(day: date, cycle: Cycle, anchor: date | None = None) -> date:
    """The first period start strictly after ``day`` (see :func:`period_containing`)."""
    return period_containing(day, cycle, anchor).end


# -- ranges ---------------------------------------------------------------------------------------

def merge(ranges: Iterable[Period]) -> tuple[Period, ...]:
    """``ranges`` in order, with overlapping or touching ones joined and empty ones dropped."""
    out: list[Period] = []
    for r in sorted(r for r in ranges if r.days):
        if out and r.start <= out[-1].end:
            if r.end > out[-1].end:
                out[-1] = Period(out[-1].start, r.end)
        else:
            out.append(r)
    return tuple(out)


def clip(ranges: Iterable[Period], within: Period) -> tuple[Period, ...]:
    """The merged parts of ``ranges`` inside ``within``."""
    return merge(p for r in ranges if (p := r.intersection(within)) is not None)


def subtract(period: Period, ranges: Iterable[Period]) -> tuple[Period, ...]:
    """The parts of ``period`` outside every range of ``ranges``, in order."""
    out: list[Period] = []
    cursor = period.start
    for r in clip(ranges, period):
        if r.start > cursor:
            out.append(Period(cursor, r.start))
        cursor = r.end
    if cursor < period.end:
        out.append(Period(cursor, period.end))
    return tuple(out)


# -- recurring ------------------------------------------------------------------------------------

def _recurring_step(cursor: date, cycle: Cycle) -> tuple[Period, int]:
    """The full period billing from ``cursor`` is a part of, and how many months it spans."""
    if cursor.day == cycle.billing_day:
        return Period(cursor, add_months(cursor, cycle.months)), cycle.months
    return Period(billing_date_on_or_before(cursor, cycle.billing_day),
                  next_billing_date(cursor, cycle.billing_day)), 1


def _service_range(start: date, end: date | None, billed_until: date | None) -> date | None:
    """Where billing goes on from; ``None`` when the service is billed to its end."""
    if end is not None and end < start:
        raise PeriodError(f"a service cannot end ({end}) before it starts ({start})")
    cursor = start if billed_until is None else max(start, billed_until)
    return None if end is not None and cursor >= end else cursor


def first_period(start: date, cycle: Cycle) -> BillingPeriod:
    """A service's first period: the stub from ``start`` to the next billing day (or a whole
    period when it starts on the billing day), before any end or pause."""
    full, months = _recurring_step(start, cycle)
    return BillingPeriod(Period(start, full.end), full, months)


def periods_to_bill(run_date: date, cycle: Cycle, timing: Timing, start: date, end: date | None = None,
                    billed_until: date | None = None, pauses: Iterable[Period] = ()) -> tuple[BillingPeriod, ...]:
    """The periods a billing run on ``run_date`` bills for a service over ``[start, end)``.

    ``billed_until`` is the end of the last period billed (``None``: nothing billed yet); the
    caller stores the last returned period's ``billed.end`` as the new one, so that runs on any
    dates bill every day of the service exactly once. ``pauses`` are the service's paused ranges
    (any order, may overlap); each period carries those inside it. Nothing due gives ``()``.
    """
    cursor = _service_range(start, end, billed_until)
    pauses = merge(pauses)
    out: list[BillingPeriod] = []
    while cursor is not None:
        full, months = _recurring_step(cursor, cycle)
        billed = Period(cursor, full.end if end is None else min(full.end, end))
        due = billed.start <= run_date if timing is Timing.IN_ADVANCE else billed.end <= run_date
        if not due:
            break
        out.append(BillingPeriod(billed, full, months, clip(pauses, billed)))
        cursor = billed.end if end is None or billed.end < end else None
    return tuple(out)


def overbilled(end: date | None, billed_until: date | None, pauses: Iterable[Period] = ()) -> tuple[Period, ...]:
    """What was billed in advance beyond a service's ``end``: ``[end, billed_until)``, for a
    credit note (proration credits it against the periods it falls in). ``pauses`` already left
    out of those charges are left out here too."""
    if end is None or billed_until is None or billed_until <= end:
        return ()
    return subtract(Period(end, billed_until), pauses)


# -- prepaid --------------------------------------------------------------------------------------

def prepaid_days_to_charge(run_date: date, start: date, end: date | None = None, billed_until: date | None = None,
                           pauses: Iterable[Period] = ()) -> tuple[BillingPeriod, ...]:
    """Prepaid daily: each day not charged yet from the service's start up to and including
    ``run_date`` (a day is charged in advance, on its morning), as a one-day part of its calendar
    month, whose price is the monthly price. A paused day comes with itself as ``paused`` (it
    costs nothing, and ``billed_until`` still moves past it)."""
    cursor = _service_range(start, end, billed_until)
    pauses = merge(pauses)
    out: list[BillingPeriod] = []
    while cursor is not None and cursor <= run_date:
        day = Period(cursor, cursor + ONE_DAY)
        out.append(BillingPeriod(day, calendar_month(cursor), 1, clip(pauses, day)))
        cursor = day.end if end is None or day.end < end else None
    return tuple(out)


def prepaid_period_containing(day: date, start: date, every_days: int | None = None) -> Period:
    """Prepaid custom period around ``day`` of a service started on ``start``: months counted
    from ``start`` (31 January, 29 February, 31 March: the day of month is clamped, each period
    counted from ``start`` itself) or, with ``every_days``, periods of that many days."""
    if day < start:
        raise PeriodError(f"{day} is before the service's start {start}")
    if every_days is not None:
        if not 1 <= every_days <= 365:
            raise PeriodError(f"a prepaid period of {every_days} days is not 1-365")
        k = (day - start).days // every_days
        return Period(start + timedelta(days=k * every_days), start + timedelta(days=(k + 1) * every_days))
    k = (day.year - start.year) * 12 + day.month - start.month
    if add_months(start, k) > day:
        k -= 1
    return Period(add_months(start, k), add_months(start, k + 1))


def prepaid_periods_to_charge(run_date: date, start: date, end: date | None = None, billed_until: date | None = None,
                              every_days: int | None = None,
                              pauses: Iterable[Period] = ()) -> tuple[BillingPeriod, ...]:
    """Prepaid custom: the periods (see :func:`prepaid_period_containing`) that start on or before
    ``run_date`` and are not charged yet, charged in advance; the last one cut at ``end``."""
    cursor = _service_range(start, end, billed_until)
    pauses = merge(pauses)
    out: list[BillingPeriod] = []
    while cursor is not None and cursor <= run_date:
        full = prepaid_period_containing(cursor, start, every_days)
        billed = Period(cursor, full.end if end is None else min(full.end, end))
        out.append(BillingPeriod(billed, full, None if every_days is not None else 1, clip(pauses, billed)))
        cursor = billed.end if end is None or billed.end < end else None
    return tuple(out)
