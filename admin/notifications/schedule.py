"""When notices go out: send windows, delays, the reminders' days and the prepaid outlook. Pure.

Nothing here reads the clock: ``now``/``today`` are arguments (the worker, the settings page's
calendar and the tests ask the same question and get the same answer). Instants are aware
:class:`~datetime.datetime`s and come back in UTC; hours and days are those of the window's zone
(``notification_settings.timezone``), so "weekdays 08:00-20:00 in Europe/Vienna" stays that across
daylight saving time:

- on the spring-forward day an hour that does not exist (02:30 in Vienna) is the first moment that
  does (03:00);
- on the fall-back day an hour that happens twice (02:00-02:59) is its first occurrence.

The days in a :class:`Window`'s ``closed`` set (public holidays, the ISP's own days:
:func:`holidays_between`) are skipped whole.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

UTC = dt.UTC
#: How far ahead :func:`first_open` looks for an open moment before it says the window never opens.
MAX_SEARCH_DAYS = 800
#: The longest prepaid outlook (days): a larger balance simply lasts "more than this".
MAX_OUTLOOK_DAYS = 36_600

ReminderMode = Literal["relative", "static"]


class ScheduleError(ValueError):
    """Settings or arguments no schedule can be made from: ``str()`` is one line for the operator."""


@dataclass(frozen=True, slots=True)
class Window:
    """When messages may go out: ISO weekdays ``days`` (1 Monday .. 7 Sunday), the hours
    ``[start_hour, end_hour)`` of the zone ``tz``, and not on the ``closed`` days."""

    days: frozenset[int]
    start_hour: int
    end_hour: int  # exclusive: 20 closes at 20:00; 24 at midnight
    tz: ZoneInfo
    closed: frozenset[dt.date] = frozenset()

    def __post_init__(self) -> None:
        if not self.days or not self.days <= frozenset(range(1, 8)):
            raise ScheduleError(f"the send days must be ISO weekdays 1-7, at least one (not {sorted(self.days)})")
        if not 0 <= self.start_hour <= 23:
            raise ScheduleError(f"the window's first hour {self.start_hour} is not 0-23")
        if not 1 <= self.end_hour <= 24:
            raise ScheduleError(f"the window's end hour {self.end_hour} is not 1-24")
        if self.end_hour <= self.start_hour:
            raise ScheduleError(f"the window ends ({self.end_hour}:00) before it starts ({self.start_hour}:00)")
        if not isinstance(self.tz, ZoneInfo):
            raise ScheduleError(f"the window's zone must be a ZoneInfo, not {type(self.tz).__name__}")

    def is_open(self, at: dt.datetime) -> bool:
        """Whether the instant ``at`` lies inside the window."""
        day = _aware(at, "at").astimezone(self.tz).date()
        if day.isoweekday() not in self.days or day in self.closed:
            return False
        return at_hour(day, self.start_hour, self.tz) <= at < at_hour(day, self.end_hour, self.tz)


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise ScheduleError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(f"{name} {value.isoformat()} has no time zone (give an aware datetime, in UTC)")
    return value


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _three_whole(value: object) -> bool:
    return isinstance(value, tuple | list) and len(value) == 3 and all(_whole(v) for v in value)


def _finite(value: object) -> bool:
    return isinstance(value, Decimal) and value.is_finite()


def at_hour(day: dt.date, hour: int, tz: ZoneInfo) -> dt.datetime:
    """The instant (UTC) when the clocks of ``tz`` show ``hour``:00 on ``day`` (24: the next day's 00:00).

    An hour skipped by a spring-forward is the first moment after the gap; an hour that happens
    twice (fall-back) is its first occurrence."""
    if not 0 <= hour <= 24:
        raise ScheduleError(f"hour {hour} is not 0-24")
    if hour == 24:
        day, hour = day + dt.timedelta(days=1), 0
    wall = dt.datetime(day.year, day.month, day.day, hour)  # noqa: DTZ001 (a wall-clock time of ``tz``)
    return _local_to_utc(wall, tz)


def _local_to_utc(wall: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)  # the first occurrence of an ambiguous time
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # ``wall`` falls in a gap: fold=0 reads it with the offset before the jump, which is already
    # after it (02:30 CET = 03:30 CEST), fold=1 with the one after (= 01:30 CET), before it. The
    # jump lies between them: find it to the second.
    after, before = first, wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if before > after:
        before, after = after, before
    target = after.astimezone(tz).utcoffset()
    lo, hi = 0, int((after - before).total_seconds())  # offset(before + hi) == target; find the least
    while lo < hi:
        mid = (lo + hi) // 2
        if (before + dt.timedelta(seconds=mid)).astimezone(tz).utcoffset() == target:
            hi = mid
        else:
            lo = mid + 1
    return before + dt.timedelta(seconds=lo)


def first_open(at: dt.datetime, window: Window) -> dt.datetime:
    """The first moment at or after ``at`` inside ``window`` (UTC)."""
    at = _aware(at, "at").astimezone(UTC)
    day = at.astimezone(window.tz).date()
    for _ in range(MAX_SEARCH_DAYS):
        if day.isoweekday() in window.days and day not in window.closed:
            opens = at_hour(day, window.start_hour, window.tz)
            closes = at_hour(day, window.end_hour, window.tz)
            if opens < closes and at < closes:  # opens == closes: the hours fell in a DST gap today
                return max(at, opens)
        day += dt.timedelta(days=1)
    raise ScheduleError(f"the send window never opens in the {MAX_SEARCH_DAYS} days after {at.date().isoformat()} "
                        "(every send day is closed)")


def document_send_at(created: dt.datetime, delay_hours: int, window: Window | None) -> dt.datetime:
    """When a document's notice goes: ``delay_hours`` after ``created``, then the first open moment
    of ``window`` (``None``: at once after the delay)."""
    if not _whole(delay_hours) or delay_hours < 0:
        raise ScheduleError(f"the delay must be a whole number of hours, 0 or more (not {delay_hours!r})")
    at = _aware(created, "created").astimezone(UTC) + dt.timedelta(hours=delay_hours)
    return at if window is None else first_open(at, window)


def _on_day_of_month(year: int, month: int, day: int) -> dt.date:
    return dt.date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _next_day_of_month(after: dt.date, day: int) -> dt.date:
    """The first date after ``after`` that is the ``day``-th of its month (or its last day, when shorter)."""
    candidate = _on_day_of_month(after.year, after.month, day)
    if candidate > after:
        return candidate
    year, month = (after.year + 1, 1) if after.month == 12 else (after.year, after.month + 1)
    return _on_day_of_month(year, month, day)


def reminder_dates(due_on: dt.date, days: tuple[int, int, int],
                   mode: ReminderMode) -> tuple[dt.date, dt.date, dt.date]:
    """The days reminders #1, #2 and #3 of an invoice due on ``due_on`` are sent.

    ``relative``: #1 ``days[0]`` days after the due date, #2 ``days[1]`` days after #1, #3
    ``days[2]`` days after #2 (each 1-366). ``static``: #1 on the first ``days[0]``-th of a month
    after the due date (31 in a 30-day month or February: its last day), #2 on the first
    ``days[1]``-th after #1, #3 likewise (each 1-31). Either way they ascend and fall after the due date."""
    if not _three_whole(days):
        raise ScheduleError(f"three reminder days are needed, whole numbers (not {days!r})")
    if mode == "relative":
        if not all(1 <= d <= 366 for d in days):
            raise ScheduleError(f"relative reminder days are 1-366 days after the one before (not {days!r})")
        first = due_on + dt.timedelta(days=days[0])
        second = first + dt.timedelta(days=days[1])
        return first, second, second + dt.timedelta(days=days[2])
    if mode == "static":
        if not all(1 <= d <= 31 for d in days):
            raise ScheduleError(f"static reminder days are days of the month, 1-31 (not {days!r})")
        first = _next_day_of_month(due_on, days[0])
        second = _next_day_of_month(first, days[1])
        return first, second, _next_day_of_month(second, days[2])
    raise ScheduleError(f"reminder days are 'relative' or 'static', not {mode!r}")


def prepaid_outlook(today: dt.date, balance: Decimal, daily_cost: Decimal,
                    min_balance: Decimal) -> tuple[int, dt.date] | None:
    """How long a prepaid balance lasts: ``(days_left, blocking_on)``, or None when nothing is
    charged (``daily_cost`` <= 0).

    ``balance`` is the balance after today's charge (the billing worker posts the day's prepaid
    charges before any notice hour). ``days_left``: the whole days after today whose charge the
    balance above ``min_balance`` pays; ``blocking_on``: the day whose charge takes the balance to
    the minimum or below (dunning blocks a prepaid customer when the balance *reaches* the minimum):
    the day after the last paid one, or that day itself when the balance reaches the minimum
    exactly; today when it is there already. Both stop at :data:`MAX_OUTLOOK_DAYS`."""
    for name, value in (("balance", balance), ("daily_cost", daily_cost), ("min_balance", min_balance)):
        if not _finite(value):
            raise ScheduleError(f"{name} must be a finite Decimal, not {value!r}")
    if daily_cost <= 0:
        return None
    lasts = (balance - min_balance) / daily_cost
    if lasts <= 0:
        return 0, today
    whole = min(int(lasts.to_integral_value(ROUND_FLOOR)), MAX_OUTLOOK_DAYS)
    blocked_after = min(int(lasts.to_integral_value(ROUND_CEILING)), MAX_OUTLOOK_DAYS)
    return whole, today + dt.timedelta(days=blocked_after)


def notice_due(days_left: int, thresholds: tuple[int | None, ...]) -> int | None:
    """Which prepaid notice (1-based) is due with ``days_left`` days of balance left: of the notices
    whose threshold ("days before blocking"; None: that notice is off) is ``days_left`` or more,
    the most urgent (the smallest threshold; on a tie the later notice). None: no notice yet.

    So with (7, 3, 1) a customer with 5 days left gets #1, with 2 days #2, with 0 days #3, and a
    run that missed a day never sends a gentler notice after a firmer one."""
    best: tuple[int, int] | None = None  # (threshold, -number)
    for number, threshold in enumerate(thresholds, start=1):
        if threshold is None:
            continue
        if threshold >= days_left and (best is None or (threshold, -number) < best):
            best = (threshold, -number)
    return None if best is None else -best[1]


def holidays_between(country: str | None, subdivision: str | None, extra_days: Iterable[dt.date],
                     start: dt.date, end: dt.date) -> frozenset[dt.date]:
    """The closed days from ``start`` to ``end`` (both included): the public holidays of
    ``country`` (ISO 3166; ``subdivision``: its state or region; None or '': none) and ``extra_days``
    (the ISP's own, ``billing_holidays``)."""
    if end < start:
        return frozenset()
    if end.year - start.year > 10:
        raise ScheduleError(f"holidays for {start.isoformat()}..{end.isoformat()}: at most ten years at once")
    days = {d for d in extra_days if start <= d <= end}
    if country:
        for year in range(start.year, end.year + 1):
            days.update(d for d in _public_holidays(country, subdivision or None, year) if start <= d <= end)
    elif subdivision:
        raise ScheduleError(f"holiday subdivision {subdivision!r} needs a country")
    return frozenset(days)


@functools.cache
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[dt.date]:
    try:
        return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year))
    except NotImplementedError as err:
        where = country if subdivision is None else f"{country}-{subdivision}"
        raise ScheduleError(f"no public holidays are known for {where!r} ({err})") from None

