"""The schedule rules (admin/notifications/schedule.py) with fixed clocks: send windows across
weekends, window edges, delays, daylight saving time and holidays; reminder days across month
ends; the prepaid outlook and which prepaid notice is due."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.notifications.schedule import (
    MAX_OUTLOOK_DAYS,
    ScheduleError,
    Window,
    at_hour,
    document_send_at,
    first_open,
    holidays_between,
    notice_due,
    prepaid_outlook,
    reminder_dates,
)

D = dt.date
UTC = dt.UTC
VIENNA = ZoneInfo("Europe/Vienna")
WEEKDAYS = frozenset({1, 2, 3, 4, 5})
OFFICE = Window(WEEKDAYS, 8, 20, VIENNA)  # Mon-Fri 08:00-20:00 Vienna


def vienna(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    """A Vienna wall-clock time (unambiguous ones only) as the UTC instant the functions take."""
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=VIENNA).astimezone(UTC)


# -- the window ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("at", "expected"), [
    (vienna(2026, 3, 4, 12, 0), vienna(2026, 3, 4, 12, 0)),  # a Wednesday noon: open
    (vienna(2026, 3, 4, 8, 0), vienna(2026, 3, 4, 8, 0)),  # the first moment of the window
    (vienna(2026, 3, 4, 7, 59, 59), vienna(2026, 3, 4, 8, 0)),  # a second before: at 08:00
    (vienna(2026, 3, 4, 19, 59, 59), vienna(2026, 3, 4, 19, 59, 59)),  # the last second
    (vienna(2026, 3, 4, 20, 0), vienna(2026, 3, 5, 8, 0)),  # the end is exclusive: the next morning
    (vienna(2026, 3, 4, 0, 0), vienna(2026, 3, 4, 8, 0)),  # midnight: that morning
    (vienna(2026, 3, 6, 20, 0), vienna(2026, 3, 9, 8, 0)),  # Friday evening: Monday morning
    (vienna(2026, 3, 7, 12, 0), vienna(2026, 3, 9, 8, 0)),  # Saturday
    (vienna(2026, 3, 8, 23, 59, 59), vienna(2026, 3, 9, 8, 0)),  # Sunday, a second before Monday
    (vienna(2026, 3, 9, 0, 0), vienna(2026, 3, 9, 8, 0)),  # Monday 00:00
])
def test_first_open_in_office_hours(at: dt.datetime, expected: dt.datetime) -> None:
    got = first_open(at, OFFICE)
    assert got == expected
    assert got.tzinfo is UTC


def test_first_open_takes_any_zone_and_answers_in_utc() -> None:
    at = dt.datetime(2026, 3, 4, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=5)))  # 19:30 Vienna
    got = first_open(at, OFFICE)
    assert got == at and got.utcoffset() == dt.timedelta(0) and got.tzinfo is UTC


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ScheduleError, match="no time zone"):
        first_open(dt.datetime(2026, 3, 4, 12), OFFICE)  # noqa: DTZ001 (the point of the test)
    with pytest.raises(ScheduleError, match="no time zone"):
        document_send_at(dt.datetime(2026, 3, 4, 12), 1, None)  # noqa: DTZ001


def test_a_window_of_one_day_a_week() -> None:
    wednesdays = Window(frozenset({3}), 10, 12, VIENNA)
    assert first_open(vienna(2026, 3, 4, 11, 59), wednesdays) == vienna(2026, 3, 4, 11, 59)
    assert first_open(vienna(2026, 3, 4, 12, 0), wednesdays) == vienna(2026, 3, 11, 10, 0)
    assert first_open(vienna(2026, 3, 5, 9, 0), wednesdays) == vienna(2026, 3, 11, 10, 0)
    assert first_open(vienna(2026, 3, 3, 23, 0), wednesdays) == vienna(2026, 3, 4, 10, 0)


def test_a_window_to_midnight_and_one_always_open() -> None:
    evenings = Window(frozenset(range(1, 8)), 20, 24, VIENNA)
    assert first_open(vienna(2026, 3, 4, 23, 59, 59), evenings) == vienna(2026, 3, 4, 23, 59, 59)
    assert first_open(vienna(2026, 3, 5, 0, 0), evenings) == vienna(2026, 3, 5, 20, 0)
    always = Window(frozenset(range(1, 8)), 0, 24, VIENNA)
    for at in (vienna(2026, 3, 29, 3, 0), vienna(2026, 10, 25, 4, 0), dt.datetime(2026, 12, 31, 23, 59, tzinfo=UTC)):
        assert first_open(at, always) == at


@pytest.mark.parametrize(("delay", "expected"), [
    (0, vienna(2026, 3, 6, 17, 30)),
    (1, vienna(2026, 3, 6, 18, 30)),  # still Friday's window
    (3, vienna(2026, 3, 9, 8, 0)),  # 20:30 Friday: Monday morning
    (6, vienna(2026, 3, 9, 8, 0)),  # 23:30 Friday
    (12, vienna(2026, 3, 9, 8, 0)),  # 05:30 Saturday
    (24, vienna(2026, 3, 9, 8, 0)),  # 17:30 Saturday
    (48, vienna(2026, 3, 9, 8, 0)),  # 17:30 Sunday
    (72, vienna(2026, 3, 9, 17, 30)),  # 17:30 Monday: open
])
def test_document_send_at_every_delay(delay: int, expected: dt.datetime) -> None:
    created = vienna(2026, 3, 6, 17, 30)  # a Friday afternoon
    assert document_send_at(created, delay, OFFICE) == expected
    assert document_send_at(created, delay, None) == created + dt.timedelta(hours=delay)


@pytest.mark.parametrize(("delay", "expected"), [
    (1, vienna(2026, 3, 10, 8, 0)),  # 07:15 Tuesday: at opening
    (3, vienna(2026, 3, 10, 9, 15)),
    (12, vienna(2026, 3, 10, 18, 15)),
    (24, vienna(2026, 3, 11, 8, 0)),  # 06:15 Wednesday
    (48, vienna(2026, 3, 12, 8, 0)),
    (72, vienna(2026, 3, 13, 8, 0)),
])
def test_document_send_at_a_night_invoice(delay: int, expected: dt.datetime) -> None:
    assert document_send_at(vienna(2026, 3, 10, 6, 15), delay, OFFICE) == expected  # made 06:15 Tuesday


@pytest.mark.parametrize("delay", [-1, 1.5, True, "3"])
def test_a_bad_delay_is_refused(delay: object) -> None:
    with pytest.raises(ScheduleError, match="delay"):
        document_send_at(vienna(2026, 3, 6, 17, 30), delay, OFFICE)  # type: ignore[arg-type]


@pytest.mark.parametrize(("days", "start", "end", "match"), [
    (frozenset(), 8, 20, "send days"),
    (frozenset({0, 1}), 8, 20, "send days"),
    (frozenset({8}), 8, 20, "send days"),
    (WEEKDAYS, 24, 24, "first hour"),
    (WEEKDAYS, -1, 20, "first hour"),
    (WEEKDAYS, 8, 25, "end hour"),
    (WEEKDAYS, 8, 0, "end hour"),
    (WEEKDAYS, 20, 8, "before it starts"),
    (WEEKDAYS, 8, 8, "before it starts"),
])
def test_a_bad_window_is_refused(days: frozenset[int], start: int, end: int, match: str) -> None:
    with pytest.raises(ScheduleError, match=match):
        Window(days, start, end, VIENNA)


def test_a_window_that_never_opens_is_an_error_not_a_hang() -> None:
    mondays = {D(2026, 1, 5) + dt.timedelta(weeks=n) for n in range(200)}
    window = Window(frozenset({1}), 8, 20, VIENNA, closed=frozenset(mondays))
    with pytest.raises(ScheduleError, match="never opens"):
        first_open(vienna(2026, 1, 1, 12, 0), window)


# -- daylight saving time --------------------------------------------------------------------------

def test_at_hour_on_the_spring_forward_day() -> None:
    day = D(2026, 3, 29)  # Vienna: 02:00 CET -> 03:00 CEST
    assert at_hour(day, 1, VIENNA) == dt.datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    assert at_hour(day, 2, VIENNA) == dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # no 02:00: 03:00 CEST
    assert at_hour(day, 3, VIENNA) == dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert at_hour(day, 4, VIENNA) == dt.datetime(2026, 3, 29, 2, 0, tzinfo=UTC)
    assert at_hour(D(2026, 3, 28), 9, VIENNA) == dt.datetime(2026, 3, 28, 8, 0, tzinfo=UTC)  # CET
    assert at_hour(D(2026, 3, 30), 9, VIENNA) == dt.datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # CEST


def test_at_hour_on_the_fall_back_day() -> None:
    day = D(2026, 10, 25)  # Vienna: 03:00 CEST -> 02:00 CET, so 02:00-02:59 happens twice
    assert at_hour(day, 2, VIENNA) == dt.datetime(2026, 10, 25, 0, 0, tzinfo=UTC)  # the first 02:00 (CEST)
    assert at_hour(day, 3, VIENNA) == dt.datetime(2026, 10, 25, 2, 0, tzinfo=UTC)  # CET
    assert at_hour(day, 24, VIENNA) == dt.datetime(2026, 10, 25, 23, 0, tzinfo=UTC)  # a 25-hour day


def test_at_hour_in_a_half_hour_gap() -> None:
    lord_howe = ZoneInfo("Australia/Lord_Howe")  # 2026-10-04: 02:00 +10:30 -> 02:30 +11:00
    assert at_hour(D(2026, 10, 4), 2, lord_howe) == dt.datetime(2026, 10, 3, 15, 30, tzinfo=UTC)  # = 02:30 +11
    assert at_hour(D(2026, 10, 4), 3, lord_howe) == dt.datetime(2026, 10, 3, 16, 0, tzinfo=UTC)


def test_at_hour_refuses_bad_hours() -> None:
    for hour in (-1, 25):
        with pytest.raises(ScheduleError, match="hour"):
            at_hour(D(2026, 1, 1), hour, VIENNA)


def test_the_window_keeps_its_local_hours_across_dst() -> None:
    daily = Window(frozenset(range(1, 8)), 9, 17, VIENNA)
    assert first_open(dt.datetime(2026, 3, 28, 17, 0, tzinfo=UTC), daily) == dt.datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    assert first_open(dt.datetime(2026, 10, 24, 16, 0, tzinfo=UTC), daily) == dt.datetime(2026, 10, 25, 8, 0,
                                                                                          tzinfo=UTC)
    # 16:30 CET on Saturday 2026-10-24 is still 14:30 UTC (CEST): open until 15:00 UTC
    assert first_open(dt.datetime(2026, 10, 24, 14, 30, tzinfo=UTC), daily) == dt.datetime(2026, 10, 24, 14, 30,
                                                                                           tzinfo=UTC)


def test_a_window_inside_the_spring_gap_is_shut_that_day() -> None:
    night = Window(frozenset(range(1, 8)), 2, 3, VIENNA)  # 02:00-03:00 does not exist on 2026-03-29
    got = first_open(dt.datetime(2026, 3, 28, 23, 30, tzinfo=UTC), night)
    assert got == vienna(2026, 3, 30, 2, 0) == dt.datetime(2026, 3, 30, 0, 0, tzinfo=UTC)


def test_a_window_over_the_autumn_fold_holds_both_hours() -> None:
    night = Window(frozenset(range(1, 8)), 2, 3, VIENNA)  # 2026-10-25: 02:00-03:00 CET ends at 02:00 UTC
    first = dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second = dt.datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert first_open(first, night) == first
    assert first_open(second, night) == second
    assert first_open(dt.datetime(2026, 10, 25, 2, 0, tzinfo=UTC), night) == dt.datetime(2026, 10, 26, 1, 0, tzinfo=UTC)
    assert first_open(dt.datetime(2026, 10, 24, 23, 0, tzinfo=UTC), night) == dt.datetime(2026, 10, 25, 0, 0,
                                                                                         tzinfo=UTC)


def test_delays_across_the_dst_change_are_real_hours() -> None:
    created = vienna(2026, 3, 28, 12, 0)  # Saturday noon CET
    always = Window(frozenset(range(1, 8)), 0, 24, VIENNA)
    # 24 hours later is 13:00 CEST on Sunday: a delay counts hours elapsed, not wall-clock hours
    assert document_send_at(created, 24, always) == vienna(2026, 3, 29, 13, 0)


# -- holidays --------------------------------------------------------------------------------------

def test_public_holidays_and_the_isps_days_close_the_window() -> None:
    closed = holidays_between("AT", None, [D(2026, 1, 7)], D(2026, 1, 1), D(2026, 12, 31))
    assert {D(2026, 1, 1), D(2026, 1, 6), D(2026, 12, 25), D(2026, 12, 26), D(2026, 1, 7)} <= closed
    window = Window(WEEKDAYS, 8, 20, VIENNA, closed=closed)
    # Monday 5 January evening -> Tuesday 6th (Epiphany) and Wednesday 7th (the ISP's) closed -> Thursday
    assert first_open(vienna(2026, 1, 5, 20, 30), window) == vienna(2026, 1, 8, 8, 0)
    # Christmas Eve 2026 is a Thursday (a working day in Austria); 25th and 26th are holidays, then a weekend
    assert first_open(vienna(2026, 12, 24, 21, 0), window) == vienna(2026, 12, 28, 8, 0)
    # the closed days must cover the days the search goes through: 1 January 2027 is open with the 2026 list
    assert document_send_at(vienna(2026, 12, 31, 18, 0), 12, window) == vienna(2027, 1, 1, 8, 0)
    closed = holidays_between("AT", None, [], D(2026, 12, 1), D(2027, 1, 31))
    window = Window(WEEKDAYS, 8, 20, VIENNA, closed=closed)
    assert document_send_at(vienna(2026, 12, 31, 18, 0), 12, window) == vienna(2027, 1, 4, 8, 0)


def test_holidays_of_a_subdivision() -> None:
    bavaria = holidays_between("DE", "BY", [], D(2026, 1, 1), D(2026, 12, 31))
    berlin = holidays_between("DE", "BE", [], D(2026, 1, 1), D(2026, 12, 31))
    assert D(2026, 1, 6) in bavaria and D(2026, 1, 6) not in berlin
    assert D(2026, 3, 8) in berlin  # International Women's Day, Berlin only


def test_holidays_between_bounds_and_errors() -> None:
    assert holidays_between(None, None, [D(2026, 5, 2), D(2027, 1, 1)], D(2026, 1, 1), D(2026, 12, 31)) == {
        D(2026, 5, 2)}
    assert holidays_between("AT", None, [], D(2026, 2, 1), D(2026, 1, 1)) == frozenset()
    assert holidays_between("", "", [], D(2026, 1, 1), D(2026, 1, 31)) == frozenset()
    assert holidays_between("AT", None, [], D(2025, 12, 31), D(2026, 1, 1)) == {D(2026, 1, 1)}
    with pytest.raises(ScheduleError, match="no public holidays"):
        holidays_between("XX", None, [], D(2026, 1, 1), D(2026, 12, 31))
    with pytest.raises(ScheduleError, match="needs a country"):
        holidays_between(None, "BY", [], D(2026, 1, 1), D(2026, 12, 31))
    with pytest.raises(ScheduleError, match="ten years"):
        holidays_between("AT", None, [], D(2000, 1, 1), D(2026, 12, 31))


# -- reminder days ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("due", "days", "expected"), [
    (D(2026, 1, 25), (7, 7, 14), (D(2026, 2, 1), D(2026, 2, 8), D(2026, 2, 22))),  # across the month's end
    (D(2026, 2, 20), (10, 10, 10), (D(2026, 3, 2), D(2026, 3, 12), D(2026, 3, 22))),  # past a short February
    (D(2028, 2, 20), (10, 10, 10), (D(2028, 3, 1), D(2028, 3, 11), D(2028, 3, 21))),  # a leap year
    (D(2026, 12, 28), (5, 30, 30), (D(2027, 1, 2), D(2027, 2, 1), D(2027, 3, 3))),  # into the next year
    (D(2026, 3, 1), (1, 1, 1), (D(2026, 3, 2), D(2026, 3, 3), D(2026, 3, 4))),
])
def test_relative_reminder_days(due: dt.date, days: tuple[int, int, int],
                                expected: tuple[dt.date, dt.date, dt.date]) -> None:
    assert reminder_dates(due, days, "relative") == expected


@pytest.mark.parametrize(("due", "days", "expected"), [
    (D(2026, 1, 31), (31, 31, 31), (D(2026, 2, 28), D(2026, 3, 31), D(2026, 4, 30))),  # month ends
    (D(2028, 1, 31), (31, 31, 31), (D(2028, 2, 29), D(2028, 3, 31), D(2028, 4, 30))),  # leap February
    (D(2026, 1, 15), (10, 5, 20), (D(2026, 2, 10), D(2026, 3, 5), D(2026, 3, 20))),
    (D(2026, 3, 4), (5, 5, 5), (D(2026, 3, 5), D(2026, 4, 5), D(2026, 5, 5))),  # the day after the due date
    (D(2026, 3, 5), (5, 5, 5), (D(2026, 4, 5), D(2026, 5, 5), D(2026, 6, 5))),  # never on the due date
    (D(2026, 1, 20), (30, 30, 30), (D(2026, 1, 30), D(2026, 2, 28), D(2026, 3, 30))),  # Feb 28, then 30 March
    (D(2026, 12, 20), (10, 1, 31), (D(2027, 1, 10), D(2027, 2, 1), D(2027, 2, 28))),  # across the year
    (D(2026, 2, 28), (29, 30, 31), (D(2026, 3, 29), D(2026, 3, 30), D(2026, 3, 31))),  # one month, ascending
    (D(2026, 4, 30), (31, 31, 1), (D(2026, 5, 31), D(2026, 6, 30), D(2026, 7, 1))),
])
def test_static_reminder_days(due: dt.date, days: tuple[int, int, int],
                              expected: tuple[dt.date, dt.date, dt.date]) -> None:
    assert reminder_dates(due, days, "static") == expected


@pytest.mark.parametrize(("days", "mode", "match"), [
    ((0, 7, 7), "relative", "1-366"),
    ((7, 0, 7), "relative", "1-366"),
    ((7, 7, 367), "relative", "1-366"),
    ((0, 5, 5), "static", "1-31"),
    ((5, 5, 32), "static", "1-31"),
    ((5, 5), "static", "three"),
    ((5, 5, 5.0), "static", "three"),
    ((5, 5, 5), "weekly", "'relative' or 'static'"),
])
def test_bad_reminder_days_are_refused(days: tuple[int, int, int], mode: str, match: str) -> None:
    with pytest.raises(ScheduleError, match=match):
        reminder_dates(D(2026, 1, 1), days, mode)  # type: ignore[arg-type]


@given(due=st.dates(D(2000, 1, 1), D(2090, 12, 31)), days=st.tuples(*[st.integers(1, 31)] * 3),
       mode=st.sampled_from(["relative", "static"]))
def test_reminders_ascend_after_the_due_date(due: dt.date, days: tuple[int, int, int], mode: str) -> None:
    first, second, third = reminder_dates(due, days, mode)  # type: ignore[arg-type]
    assert due < first < second < third
    if mode == "static":
        for day, wanted in zip((first, second, third), days, strict=True):
            assert day.day == wanted or (day.day < wanted and (day + dt.timedelta(days=1)).day == 1)
        assert (first - due).days <= 62 and (second - first).days <= 62 and (third - second).days <= 62
    else:
        assert ((first - due).days, (second - first).days, (third - second).days) == days


# -- prepaid ---------------------------------------------------------------------------------------

TODAY = D(2026, 3, 2)
M = Decimal


@pytest.mark.parametrize(("balance", "cost", "minimum", "expected"), [
    (M("25"), M("10"), M(0), (2, D(2026, 3, 5))),  # pays 2 more days; the third day's charge blocks
    (M("20"), M("10"), M(0), (2, D(2026, 3, 4))),  # reaches the minimum exactly on the second day
    (M("9.99"), M("10"), M(0), (0, D(2026, 3, 3))),  # tomorrow's charge blocks
    (M(0), M("10"), M(0), (0, TODAY)),  # at the minimum already
    (M("-5"), M("10"), M(0), (0, TODAY)),
    (M("5"), M("10"), M("-10"), (1, D(2026, 3, 4))),  # a negative minimum is a credit line
    (M("30"), M("10"), M("10"), (2, D(2026, 3, 4))),
    (M("1.00"), M("0.0329"), M(0), (30, D(2026, 4, 2))),  # 30.4 days: 30 paid, the 31st blocks
])
def test_prepaid_outlook(balance: Decimal, cost: Decimal, minimum: Decimal,
                         expected: tuple[int, dt.date]) -> None:
    assert prepaid_outlook(TODAY, balance, cost, minimum) == expected


def test_prepaid_outlook_without_a_daily_cost_and_with_a_huge_balance() -> None:
    assert prepaid_outlook(TODAY, M("10"), M(0), M(0)) is None
    assert prepaid_outlook(TODAY, M("10"), M("-1"), M(0)) is None
    assert prepaid_outlook(TODAY, M("1e12"), M("0.01"), M(0)) == (MAX_OUTLOOK_DAYS,
                                                                   TODAY + dt.timedelta(days=MAX_OUTLOOK_DAYS))
    for bad in (10.0, M("NaN"), M("Infinity"), None):
        with pytest.raises(ScheduleError, match="finite Decimal"):
            prepaid_outlook(TODAY, bad, M(1), M(0))  # type: ignore[arg-type]


@pytest.mark.parametrize(("days_left", "thresholds", "expected"), [
    (10, (7, 3, 1), None),
    (8, (7, 3, 1), None),
    (7, (7, 3, 1), 1),
    (5, (7, 3, 1), 1),
    (3, (7, 3, 1), 2),
    (2, (7, 3, 1), 2),
    (1, (7, 3, 1), 3),
    (0, (7, 3, 1), 3),
    (-2, (7, 3, 1), 3),
    (2, (7, None, 1), 1),  # notice 2 off
    (0, (None, None, None), None),
    (3, (3, 3, None), 2),  # a tie: the later notice
    (2, (3, 7, None), 1),  # out of order: still the most urgent
    (5, (3, 7, None), 2),
    (0, (), None),
])
def test_notice_due(days_left: int, thresholds: tuple[int | None, ...], expected: int | None) -> None:
    assert notice_due(days_left, thresholds) == expected


@given(st.integers(-5, 40), st.tuples(*[st.one_of(st.none(), st.integers(0, 30))] * 3))
def test_the_notice_due_is_never_gentler_than_a_matching_one(days_left: int,
                                                             thresholds: tuple[int | None, ...]) -> None:
    due = notice_due(days_left, thresholds)
    matching = [t for t in thresholds if t is not None and t >= days_left]
    if due is None:
        assert not matching
    else:
        assert thresholds[due - 1] == min(matching)


# -- properties of the window ----------------------------------------------------------------------

ZONES = [ZoneInfo(name) for name in ("Europe/Vienna", "UTC", "America/New_York", "Australia/Lord_Howe",
                                     "Asia/Kolkata", "Pacific/Chatham", "America/Sao_Paulo")]


@st.composite
def windows(draw: st.DrawFn) -> Window:
    start = draw(st.integers(0, 23))
    end = draw(st.integers(start + 1, 24))
    days = draw(st.frozensets(st.integers(1, 7), min_size=1))
    closed = draw(st.frozensets(st.dates(D(2026, 1, 1), D(2026, 12, 31)), max_size=30))
    return Window(days, start, end, draw(st.sampled_from(ZONES)), closed)


instants = st.datetimes(dt.datetime(2025, 12, 1), dt.datetime(2026, 12, 31), timezones=st.just(UTC))  # noqa: DTZ001


@given(at=instants, window=windows())
def test_first_open_is_the_first_moment_inside_the_window(at: dt.datetime, window: Window) -> None:
    got = first_open(at, window)
    assert got >= at
    assert got.tzinfo is UTC
    assert window.is_open(got)
    local = got.astimezone(window.tz)
    assert local.isoweekday() in window.days and local.date() not in window.closed
    assert first_open(got, window) == got  # idempotent
    if got > at:
        assert not window.is_open(at)
        assert not window.is_open(got - dt.timedelta(seconds=1))  # nothing open just before it


@given(at=instants, window=windows(), delay=st.sampled_from([0, 1, 3, 6, 12, 24, 48, 72]))
def test_document_send_at_is_after_the_delay_and_in_the_window(at: dt.datetime, window: Window, delay: int) -> None:
    got = document_send_at(at, delay, window)
    assert got >= at + dt.timedelta(hours=delay)
    assert window.is_open(got)
