"""Billing periods: the grid, the chain a billing run walks, pauses, and prepaid periods."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.billing.periods import (
    BillingPeriod,
    Cycle,
    Period,
    PeriodError,
    Timing,
    add_months,
    billing_date_on_or_before,
    billing_day_of,
    calendar_month,
    clip,
    first_period,
    merge,
    next_billing_date,
    next_period_start,
    overbilled,
    period_containing,
    periods_to_bill,
    prepaid_days_to_charge,
    prepaid_period_containing,
    prepaid_periods_to_charge,
    subtract,
)

D = date
ADV, ARR = Timing.IN_ADVANCE, Timing.IN_ARREARS


def P(a: date, b: date) -> Period:
    return Period(a, b)


def spans(periods: tuple[BillingPeriod, ...]) -> list[tuple[date, date]]:
    return [(p.billed.start, p.billed.end) for p in periods]


# -- dates and the grid ---------------------------------------------------------------------------

def test_a_period_is_half_open() -> None:
    april = P(D(2024, 4, 1), D(2024, 5, 1))
    assert april.days == 30
    assert D(2024, 4, 1) in april and D(2024, 4, 30) in april and D(2024, 5, 1) not in april
    assert P(D(2024, 4, 1), D(2024, 4, 1)).days == 0
    with pytest.raises(PeriodError):
        P(D(2024, 4, 2), D(2024, 4, 1))
    assert april.intersection(P(D(2024, 4, 20), D(2024, 6, 1))) == P(D(2024, 4, 20), D(2024, 5, 1))
    assert april.intersection(P(D(2024, 5, 1), D(2024, 6, 1))) is None  # touching is not overlapping


@pytest.mark.parametrize(("day", "months"), [(0, 1), (29, 1), (31, 1), (1, 0), (1, 13)])
def test_a_cycle_has_a_billing_day_1_to_28_and_1_to_12_months(day: int, months: int) -> None:
    with pytest.raises(PeriodError):
        Cycle(day, months)


@pytest.mark.parametrize(("created", "day"), [(D(2024, 3, 5), 5), (D(2024, 1, 28), 28), (D(2024, 1, 29), 28),
                                              (D(2024, 1, 31), 28), (D(2024, 2, 1), 1)])
def test_the_creation_date_gives_its_day_of_month_clamped_to_28(created: date, day: int) -> None:
    assert billing_day_of(created) == day


@pytest.mark.parametrize(("day", "months", "expected"), [
    (D(2024, 1, 31), 1, D(2024, 2, 29)),
    (D(2023, 1, 31), 1, D(2023, 2, 28)),
    (D(2024, 2, 29), 12, D(2025, 2, 28)),
    (D(2024, 1, 15), -1, D(2023, 12, 15)),
    (D(2024, 12, 10), 1, D(2025, 1, 10)),
    (D(2024, 3, 31), -1, D(2024, 2, 29)),
])
def test_add_months_clamps_the_day(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_billing_dates_around_a_day() -> None:
    assert billing_date_on_or_before(D(2024, 3, 9), 10) == D(2024, 2, 10)
    assert billing_date_on_or_before(D(2024, 3, 10), 10) == D(2024, 3, 10)
    assert billing_date_on_or_before(D(2024, 1, 5), 10) == D(2023, 12, 10)
    assert next_billing_date(D(2024, 3, 9), 10) == D(2024, 3, 10)
    assert next_billing_date(D(2024, 3, 10), 10) == D(2024, 4, 10)  # strictly after
    assert next_billing_date(D(2024, 12, 31), 1) == D(2025, 1, 1)


def test_the_period_containing_a_date() -> None:
    # Splynx: "10 means billing from 10th to the 9th of the next month"
    assert period_containing(D(2024, 3, 9), Cycle(10)) == P(D(2024, 2, 10), D(2024, 3, 10))
    assert period_containing(D(2024, 3, 10), Cycle(10)) == P(D(2024, 3, 10), D(2024, 4, 10))
    assert period_containing(D(2024, 5, 31), Cycle(1)) == P(D(2024, 5, 1), D(2024, 6, 1))
    # three-month periods on the grid through 10 January 2023, before and after the anchor
    q = Cycle(10, 3)
    assert period_containing(D(2024, 3, 15), q, D(2023, 1, 10)) == P(D(2024, 1, 10), D(2024, 4, 10))
    assert period_containing(D(2024, 4, 9), q, D(2023, 1, 10)) == P(D(2024, 1, 10), D(2024, 4, 10))
    assert period_containing(D(2024, 4, 10), q, D(2023, 1, 10)) == P(D(2024, 4, 10), D(2024, 7, 10))
    assert period_containing(D(2022, 12, 1), q, D(2023, 1, 10)) == P(D(2022, 10, 10), D(2023, 1, 10))
    assert next_period_start(D(2024, 3, 15), q, D(2023, 1, 10)) == D(2024, 4, 10)
    assert next_period_start(D(2024, 3, 10), Cycle(10)) == D(2024, 4, 10)
    with pytest.raises(PeriodError):
        period_containing(D(2024, 3, 15), q)  # which months start periods?
    with pytest.raises(PeriodError):
        period_containing(D(2024, 3, 15), q, D(2023, 1, 11))  # not on the billing day


@given(st.dates(D(2000, 1, 1), D(2099, 12, 31)), st.integers(1, 28), st.integers(1, 12),
       st.dates(D(2000, 1, 1), D(2099, 12, 1)))
def test_the_grid_holds_each_date_in_one_period_on_the_billing_day(day: date, billing_day: int, months: int,
                                                                    anchor: date) -> None:
    cycle = Cycle(billing_day, months)
    anchor = anchor.replace(day=billing_day)
    period = period_containing(day, cycle, anchor)
    assert day in period
    assert period.start.day == period.end.day == billing_day
    assert add_months(period.start, months) == period.end
    elapsed = (period.start.year - anchor.year) * 12 + period.start.month - anchor.month
    assert elapsed % months == 0  # on the anchor's grid
    assert period_containing(period.end, cycle, anchor).start == period.end  # the next one follows
    assert period_containing(period.start - timedelta(days=1), cycle, anchor).end == period.start


# -- recurring: what a run bills ------------------------------------------------------------------

def test_splynx_example_a_the_first_period_is_prorated_from_the_start() -> None:
    # "start 15 March, billing day 1: an invoice generated in March shows 15 March - 31 March,
    # the next invoice 1 April - 30 April"
    march = periods_to_bill(D(2024, 3, 15), Cycle(1), ADV, start=D(2024, 3, 15))
    assert spans(march) == [(D(2024, 3, 15), D(2024, 4, 1))]
    assert march[0].full == P(D(2024, 3, 1), D(2024, 4, 1)) and march[0].months == 1
    april = periods_to_bill(D(2024, 4, 1), Cycle(1), ADV, start=D(2024, 3, 15), billed_until=D(2024, 4, 1))
    assert spans(april) == [(D(2024, 4, 1), D(2024, 5, 1))]
    assert first_period(D(2024, 3, 15), Cycle(1)) == march[0]


def test_splynx_example_b_a_late_first_invoice_catches_up() -> None:
    # "an invoice generated in April will show the customer being billed from 15 March - 30 April"
    due = periods_to_bill(D(2024, 4, 1), Cycle(1), ADV, start=D(2024, 3, 15))
    assert spans(due) == [(D(2024, 3, 15), D(2024, 4, 1)), (D(2024, 4, 1), D(2024, 5, 1))]


def test_in_advance_the_billing_day_bills_the_period_starting_that_day() -> None:
    # Splynx prepaid mode: "on the 1st of May, Splynx will generate invoices for 1 - 31 of May"
    def run(on: date) -> list[tuple[date, date]]:
        return spans(periods_to_bill(on, Cycle(1), ADV, start=D(2024, 1, 1), billed_until=D(2024, 5, 1)))
    assert run(D(2024, 4, 30)) == []
    assert run(D(2024, 5, 1)) == [(D(2024, 5, 1), D(2024, 6, 1))]
    assert run(D(2024, 5, 20)) == [(D(2024, 5, 1), D(2024, 6, 1))]


def test_in_arrears_the_billing_day_bills_the_period_that_just_ended() -> None:
    # Splynx postpaid: "invoices on the 1st of May for the period of 1-30 of April"
    assert periods_to_bill(D(2024, 4, 30), Cycle(1), ARR, start=D(2024, 1, 1), billed_until=D(2024, 4, 1)) == ()
    due = periods_to_bill(D(2024, 5, 1), Cycle(1), ARR, start=D(2024, 1, 1), billed_until=D(2024, 4, 1))
    assert spans(due) == [(D(2024, 4, 1), D(2024, 5, 1))]
    # a service started mid-month: its stub is billed when it has ended, on the next billing day
    assert periods_to_bill(D(2024, 3, 31), Cycle(1), ARR, start=D(2024, 3, 15)) == ()
    assert spans(periods_to_bill(D(2024, 4, 1), Cycle(1), ARR, start=D(2024, 3, 15))) == [
        (D(2024, 3, 15), D(2024, 4, 1))]


def test_up_to_twelve_months_in_advance() -> None:
    year = Cycle(1, 12)
    due = periods_to_bill(D(2024, 4, 1), year, ADV, start=D(2024, 3, 15))
    assert spans(due) == [(D(2024, 3, 15), D(2024, 4, 1)), (D(2024, 4, 1), D(2025, 4, 1))]
    assert [p.months for p in due] == [1, 12]  # the stub is a part of its month, the rest a year
    assert due[1].full.days == 365
    assert periods_to_bill(D(2025, 3, 31), year, ADV, start=D(2024, 3, 15), billed_until=D(2025, 4, 1)) == ()
    # a service that starts on its billing day has no stub
    assert spans(periods_to_bill(D(2024, 1, 5), Cycle(5, 3), ADV, start=D(2024, 1, 5))) == [
        (D(2024, 1, 5), D(2024, 4, 5))]


def test_an_ended_service_has_its_last_period_cut_at_its_end() -> None:
    # end is exclusive: the service's last day is 19 April
    adv = periods_to_bill(D(2024, 4, 1), Cycle(1), ADV, start=D(2024, 1, 1), end=D(2024, 4, 20),
                          billed_until=D(2024, 4, 1))
    assert spans(adv) == [(D(2024, 4, 1), D(2024, 4, 20))]
    assert adv[0].full == P(D(2024, 4, 1), D(2024, 5, 1))
    assert periods_to_bill(D(2024, 5, 1), Cycle(1), ADV, start=D(2024, 1, 1), end=D(2024, 4, 20),
                           billed_until=D(2024, 4, 20)) == ()
    # in arrears it is due once it has ended
    def arrears(on: date) -> list[tuple[date, date]]:
        return spans(periods_to_bill(on, Cycle(1), ARR, start=D(2024, 1, 1), end=D(2024, 4, 20),
                                     billed_until=D(2024, 4, 1)))
    assert arrears(D(2024, 4, 19)) == []
    assert arrears(D(2024, 4, 20)) == [(D(2024, 4, 1), D(2024, 4, 20))]


def test_nothing_to_bill() -> None:
    assert periods_to_bill(D(2024, 3, 1), Cycle(1), ADV, start=D(2024, 3, 15)) == ()  # not started
    assert periods_to_bill(D(2024, 6, 1), Cycle(1), ADV, start=D(2024, 3, 15), end=D(2024, 3, 15)) == ()
    assert periods_to_bill(D(2024, 6, 1), Cycle(1), ADV, start=D(2024, 3, 15), end=D(2024, 4, 10),
                           billed_until=D(2024, 5, 1)) == ()  # billed beyond its end: see overbilled
    with pytest.raises(PeriodError):
        periods_to_bill(D(2024, 6, 1), Cycle(1), ADV, start=D(2024, 3, 15), end=D(2024, 3, 14))


def test_a_changed_billing_day_realigns_with_a_stub() -> None:
    # billed to 1 April on day 1, then moved to day 15
    due = periods_to_bill(D(2024, 4, 15), Cycle(15), ADV, start=D(2024, 1, 1), billed_until=D(2024, 4, 1))
    assert spans(due) == [(D(2024, 4, 1), D(2024, 4, 15)), (D(2024, 4, 15), D(2024, 5, 15))]
    assert due[0].full == P(D(2024, 3, 15), D(2024, 4, 15)) and due[0].months == 1


def test_periods_carry_the_pauses_inside_them() -> None:
    pauses = [P(D(2024, 4, 25), D(2024, 5, 10)), P(D(2024, 4, 10), D(2024, 4, 12)), P(D(2024, 4, 11), D(2024, 4, 13))]
    due = periods_to_bill(D(2024, 5, 1), Cycle(1), ADV, start=D(2024, 4, 1), pauses=pauses)
    assert due[0].paused == (P(D(2024, 4, 10), D(2024, 4, 13)), P(D(2024, 4, 25), D(2024, 5, 1)))
    assert due[0].active == (P(D(2024, 4, 1), D(2024, 4, 10)), P(D(2024, 4, 13), D(2024, 4, 25)))
    assert due[0].charged_days == 30 - 3 - 6
    assert due[1].paused == (P(D(2024, 5, 1), D(2024, 5, 10)),)
    assert due[1].charged_days == 31 - 9
    # a wholly paused period is still a period (billing goes past it), with nothing to charge
    whole = periods_to_bill(D(2024, 4, 1), Cycle(1), ADV, start=D(2024, 4, 1), pauses=[P(D(2024, 3, 1), D(2024, 6, 1))])
    assert whole[0].charged_days == 0 and whole[0].active == ()


def test_a_billing_period_is_checked() -> None:
    april = P(D(2024, 4, 1), D(2024, 5, 1))
    with pytest.raises(PeriodError):
        BillingPeriod(P(D(2024, 3, 30), D(2024, 4, 5)), april, 1)  # not inside
    with pytest.raises(PeriodError):
        BillingPeriod(P(D(2024, 4, 5), D(2024, 4, 5)), april, 1)  # empty
    with pytest.raises(PeriodError):
        BillingPeriod(april, april, 1, (P(D(2024, 4, 5), D(2024, 4, 8)), P(D(2024, 4, 2), D(2024, 4, 3))))  # unsorted


def test_overbilled_is_what_was_billed_beyond_the_end() -> None:
    assert overbilled(D(2024, 4, 20), D(2024, 5, 1)) == (P(D(2024, 4, 20), D(2024, 5, 1)),)
    assert overbilled(D(2024, 4, 20), D(2024, 5, 1), [P(D(2024, 4, 25), D(2024, 4, 27))]) == (
        P(D(2024, 4, 20), D(2024, 4, 25)), P(D(2024, 4, 27), D(2024, 5, 1)))
    assert overbilled(D(2024, 5, 1), D(2024, 5, 1)) == ()
    assert overbilled(None, D(2024, 5, 1)) == ()
    assert overbilled(D(2024, 4, 20), None) == ()


def test_ranges_merge_clip_and_subtract() -> None:
    a, b, c = P(D(2024, 1, 1), D(2024, 1, 5)), P(D(2024, 1, 5), D(2024, 1, 8)), P(D(2024, 1, 10), D(2024, 1, 12))
    empty = P(D(2024, 1, 20), D(2024, 1, 20))
    assert merge([c, b, a, empty]) == (P(D(2024, 1, 1), D(2024, 1, 8)), c)
    assert clip([a, c], P(D(2024, 1, 3), D(2024, 1, 11))) == (
        P(D(2024, 1, 3), D(2024, 1, 5)), P(D(2024, 1, 10), D(2024, 1, 11)))
    assert subtract(P(D(2024, 1, 1), D(2024, 1, 15)), [c, b]) == (
        P(D(2024, 1, 1), D(2024, 1, 5)), P(D(2024, 1, 8), D(2024, 1, 10)), P(D(2024, 1, 12), D(2024, 1, 15)))
    assert subtract(a, [P(D(2023, 1, 1), D(2025, 1, 1))]) == ()


# -- recurring: properties ------------------------------------------------------------------------

dates = st.dates(D(2020, 1, 1), D(2030, 12, 31))
cycles = st.builds(Cycle, st.integers(1, 28), st.sampled_from([1, 1, 2, 3, 6, 12]))
ranges = st.builds(lambda a, n: Period(a, a + timedelta(days=n)), dates, st.integers(0, 90))


@st.composite
def billing_runs(draw: st.DrawFn) -> tuple[date, date | None, list[date]]:
    """A service's start, maybe an end, and the dates of billing runs around them, in order."""
    start = draw(dates)
    end = draw(st.none() | st.integers(0, 900).map(lambda n: start + timedelta(days=n)))
    runs = sorted(draw(st.lists(st.integers(-60, 1000).map(lambda n: start + timedelta(days=n)), max_size=12)))
    return start, end, runs


@given(billing_runs(), cycles, st.sampled_from(Timing), st.lists(ranges, max_size=4))
def test_the_periods_over_any_runs_tile_the_service_without_gaps_or_overlaps(
        service: tuple[date, date | None, list[date]], cycle: Cycle, timing: Timing, pauses: list[Period]) -> None:
    start, end, runs = service
    billed_until: date | None = None
    produced: list[BillingPeriod] = []
    for run in runs:
        due = periods_to_bill(run, cycle, timing, start, end, billed_until, pauses)
        for p in due:
            assert p.billed.start <= run if timing is ADV else p.billed.end <= run
        if due:
            billed_until = due[-1].billed.end
        assert periods_to_bill(run, cycle, timing, start, end, billed_until, pauses) == ()  # idempotent
        produced.extend(due)
    # contiguous from the start, never past the end
    cursor = start
    for p in produced:
        assert p.billed.start == cursor
        cursor = p.billed.end
        assert p.full.covers(p.billed) and p.billed.days > 0
        # either a whole period on the billing day, or a one-month part (the stub or the cut end)
        assert p.full.start.day == p.full.end.day == cycle.billing_day
        assert add_months(p.full.start, p.months or 0) == p.full.end
        assert p.billed.end in (p.full.end, end)
        assert p.paused == clip(pauses, p.billed)
        assert merge([*p.active, *p.paused]) == (p.billed,)
    if end is not None:
        assert cursor <= end
    # nothing due is left behind: the last run bills up to its date
    if runs and (end is None or cursor < end):
        nxt = periods_to_bill(runs[-1], cycle, timing, start, end, cursor, pauses)
        assert nxt == ()
        if runs[-1] >= start:
            assert (cursor > runs[-1]) if timing is ADV else (next_after(cursor, cycle, end) > runs[-1])
    # the schedule of runs does not change the periods: one run at the end gives the same
    if runs:
        assert tuple(produced) == periods_to_bill(runs[-1], cycle, timing, start, end, None, pauses)


def next_after(cursor: date, cycle: Cycle, end: date | None) -> date:
    """Where the period billing from ``cursor`` ends (for the in-arrears check)."""
    stub_or_whole = first_period(cursor, cycle).billed.end
    return stub_or_whole if end is None else min(stub_or_whole, end)


@given(dates, st.integers(0, 400), cycles, st.sampled_from(Timing))
def test_a_service_that_ended_is_billed_to_its_end_exactly(start: date, length: int, cycle: Cycle,
                                                           timing: Timing) -> None:
    end = start + timedelta(days=length)
    due = periods_to_bill(end + timedelta(days=400), cycle, timing, start, end)
    assert sum(p.billed.days for p in due) == length
    assert merge(p.billed for p in due) == ((P(start, end),) if length else ())


# -- prepaid --------------------------------------------------------------------------------------

def test_prepaid_daily_charges_each_day_up_to_the_run() -> None:
    due = prepaid_days_to_charge(D(2021, 11, 3), start=D(2021, 11, 1))
    assert spans(due) == [(D(2021, 11, k), D(2021, 11, k + 1)) for k in (1, 2, 3)]
    assert all(p.full == P(D(2021, 11, 1), D(2021, 12, 1)) and p.months == 1 for p in due)
    assert spans(prepaid_days_to_charge(D(2021, 11, 3), D(2021, 11, 1), billed_until=D(2021, 11, 3))) == [
        (D(2021, 11, 3), D(2021, 11, 4))]
    assert prepaid_days_to_charge(D(2021, 11, 3), D(2021, 11, 1), billed_until=D(2021, 11, 4)) == ()
    # a month boundary, an end, a paused day
    due = prepaid_days_to_charge(D(2021, 12, 5), D(2021, 11, 30), end=D(2021, 12, 3),
                                 pauses=[P(D(2021, 12, 1), D(2021, 12, 2))])
    assert spans(due) == [(D(2021, 11, 30), D(2021, 12, 1)), (D(2021, 12, 1), D(2021, 12, 2)),
                          (D(2021, 12, 2), D(2021, 12, 3))]
    assert due[1].full == calendar_month(D(2021, 12, 1)) and due[1].charged_days == 0
    assert [p.charged_days for p in due] == [1, 0, 1]


def test_prepaid_custom_periods_count_from_the_start() -> None:
    start = D(2024, 1, 31)
    assert prepaid_period_containing(D(2024, 2, 28), start) == P(D(2024, 1, 31), D(2024, 2, 29))
    assert prepaid_period_containing(D(2024, 2, 29), start) == P(D(2024, 2, 29), D(2024, 3, 31))
    assert prepaid_period_containing(D(2024, 4, 29), start) == P(D(2024, 3, 31), D(2024, 4, 30))
    assert prepaid_period_containing(D(2024, 1, 20), D(2024, 1, 1), every_days=7) == P(D(2024, 1, 15), D(2024, 1, 22))
    with pytest.raises(PeriodError):
        prepaid_period_containing(D(2023, 12, 1), start)
    with pytest.raises(PeriodError):
        prepaid_period_containing(D(2024, 2, 1), start, every_days=0)
    weekly = prepaid_periods_to_charge(D(2024, 1, 15), D(2024, 1, 1), every_days=7)
    assert spans(weekly) == [(D(2024, 1, 1), D(2024, 1, 8)), (D(2024, 1, 8), D(2024, 1, 15)),
                             (D(2024, 1, 15), D(2024, 1, 22))]
    assert {p.months for p in weekly} == {None}
    monthly = prepaid_periods_to_charge(D(2024, 3, 10), D(2024, 1, 31), end=D(2024, 3, 15), billed_until=D(2024, 2, 29))
    assert spans(monthly) == [(D(2024, 2, 29), D(2024, 3, 15))]
    assert monthly[0].full == P(D(2024, 2, 29), D(2024, 3, 31)) and monthly[0].months == 1


@given(billing_runs(), st.none() | st.integers(1, 365), st.booleans(), st.lists(ranges, max_size=3))
def test_prepaid_periods_tile_the_service(service: tuple[date, date | None, list[date]], every_days: int | None,
                                          daily: bool, pauses: list[Period]) -> None:
    start, end, runs = service
    runs = runs[:6] if daily else runs
    billed_until: date | None = None
    cursor = start
    for run in runs:
        if daily:
            due = prepaid_days_to_charge(run, start, end, billed_until, pauses)
        else:
            due = prepaid_periods_to_charge(run, start, end, billed_until, every_days, pauses)
        for p in due:
            assert p.billed.start == cursor and p.billed.start <= run
            assert p.full.covers(p.billed) and p.paused == clip(pauses, p.billed)
            if daily:
                assert p.billed.days == 1 and p.full == calendar_month(p.billed.start)
            else:
                assert p.full == prepaid_period_containing(p.billed.start, start, every_days)
            cursor = p.billed.end
        if due:
            billed_until = due[-1].billed.end
    if end is not None:
        assert cursor <= end
    if runs and runs[-1] >= start and (end is None or cursor < end):
        assert cursor > runs[-1]
