"""Proration by days with cumulative rounding: Splynx's worked examples, and the sums that must be exact."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.billing.money import digits, quantize
from admin.billing.periods import (
    BillingPeriod,
    Cycle,
    Period,
    PeriodError,
    Timing,
    add_months,
    calendar_month,
    clip,
    merge,
    overbilled,
    period_containing,
    periods_to_bill,
    prepaid_days_to_charge,
    subtract,
)
from admin.billing.proration import (
    ChangeFees,
    charge,
    daily_charge,
    first_period_charge,
    pause_credit,
    plan_change,
    prorate,
    prorate_ranges,
)

D = date
M = Decimal


def P(a: date, b: date) -> Period:
    return Period(a, b)


def whole(period: Period, months: int = 1) -> BillingPeriod:
    return BillingPeriod(period, period, months)


NOVEMBER_2021 = P(D(2021, 11, 1), D(2021, 12, 1))  # 30 days


# -- Splynx's worked examples ---------------------------------------------------------------------

@pytest.mark.parametrize("month", [NOVEMBER_2021, P(D(2024, 4, 1), D(2024, 5, 1))])
def test_splynx_plan_change_mid_month_credits_100_and_invoices_50(month: Period) -> None:
    # Splynx docs, finance/credit_notes (business.md 1.2 retells it as 16 April; the doc's own
    # example is November 2021, also 30 days): R200 -> R100, changed on the 16th.
    # "15 days * R6.66 = R99.99 ~ R100" credited, "R3.33 * 15 days = R49.99 ~ R50" invoiced.
    # Splynx rounds the *total* (200 x 15/30 = 100): its daily rates 6.67 (6.66) and 3.33 are
    # only shown, 15 x 6.67 would be 100.05 and 15 x 3.33 would be 49.95. lastmile rounds the
    # running total (proration.py), which for these parts gives Splynx's totals exactly.
    change = plan_change(M("200"), M("100"), whole(month), month.start + timedelta(days=15), "ZAR")
    assert change.remaining == P(month.start + timedelta(days=15), month.end) and change.remaining.days == 15
    assert change.used == M("100.00")
    assert change.credit == M("100.00")
    assert change.charge == M("50.00")
    assert change.fee == M("0.00")
    # the customer paid 200, gets 100 back, pays 50: 150 for the month = 100 old + 50 new
    assert M("200") - change.credit + change.charge == M("150.00")


def test_splynx_prepaid_daily_40_a_month_is_1_33_a_day_in_a_30_day_month() -> None:
    # splynx.com/blog/billing/prepaid-billing-in-splynx: "40 USD/month ... 30 days ... daily rate
    # is 1,33 USD"; "20 USD as a deposit, he will get access for 15 days". (The blog says
    # October, which has 31 days; its figures are those of a 30-day month, used here.)
    days = [daily_charge(M("40"), D(2021, 11, k), "USD") for k in range(1, 31)]
    assert days[0] == M("1.33")
    # cumulative rounding: day k costs q(40k/30) - q(40(k-1)/30), so the cents fall where the
    # running total crosses them, and the month is 40.00, not 30 x 1.33 = 39.90
    assert days[:6] == [M("1.33"), M("1.34"), M("1.33"), M("1.33"), M("1.34"), M("1.33")]
    assert set(days) == {M("1.33"), M("1.34")}
    assert sum(days) == M("40.00")
    assert sum(days[:15]) == M("20.00")  # a 20.00 deposit lasts exactly 15 days
    assert sum(days[:14]) < M("20.00") < sum(days[:16])


def test_splynx_prepaid_daily_in_a_31_day_month() -> None:
    # Splynx docs, finance/billing_engine/prepaid_billing: "40 USD. There are 31 days in July, so the
    # daily rate will be 1,29 USD ... balance will be changed from 40 USD to 38,71 USD"
    july = [daily_charge(M("40"), D(2024, 7, k), "USD") for k in range(1, 32)]
    assert july[0] == M("1.29")
    assert M("40") - july[0] == M("38.71")
    assert sum(july) == M("40.00")


def test_splynx_example_a_first_period_from_the_start_to_the_billing_day() -> None:
    # start 15 March, billing day 1: the first invoice is 15-31 March, 17 of March's 31 days
    assert first_period_charge(M("31.00"), D(2024, 3, 15), Cycle(1), "EUR") == M("17.00")
    assert first_period_charge(M("40.00"), D(2024, 3, 15), Cycle(1), "EUR") == M("21.94")  # 21.935...
    # a start on the billing day is a whole period, months x the monthly price
    assert first_period_charge(M("40.00"), D(2024, 3, 1), Cycle(1), "EUR") == M("40.00")
    assert first_period_charge(M("40.00"), D(2024, 3, 1), Cycle(1, 12), "EUR") == M("480.00")
    # with 12-month periods the stub is still a part of its month, at the monthly price
    assert first_period_charge(M("40.00"), D(2024, 3, 15), Cycle(1, 12), "EUR") == M("21.94")


# -- the rule -------------------------------------------------------------------------------------

def test_prorate_rounds_the_running_total() -> None:
    april = P(D(2024, 4, 1), D(2024, 5, 1))
    assert prorate(M("30.00"), april, april, "EUR") == M("30.00")
    assert prorate(M("30.00"), april, P(D(2024, 4, 11), D(2024, 4, 21)), "EUR") == M("10.00")
    assert prorate(M("30.00"), april, P(D(2024, 4, 5), D(2024, 4, 5)), "EUR") == M("0.00")
    # 10/3 per day: q(10/3) = 3.33, q(20/3) = 6.67, so the second day costs 3.34
    assert prorate(M("100"), april, P(D(2024, 4, 1), D(2024, 4, 2)), "EUR") == M("3.33")
    assert prorate(M("100"), april, P(D(2024, 4, 2), D(2024, 4, 3)), "EUR") == M("3.34")
    assert prorate(M("100"), april, P(D(2024, 4, 2), D(2024, 4, 3)), "JPY") == M("4")  # q(6.67)-q(3.33)
    assert prorate(M("100"), april, P(D(2024, 4, 1), D(2024, 4, 2)), "KWD") == M("3.333")
    # a price with more decimals than the currency: only the result is rounded
    assert prorate(M("10.0050"), april, april, "EUR") == M("10.01")
    with pytest.raises(PeriodError):
        prorate(M("30"), april, P(D(2024, 4, 20), D(2024, 5, 2)), "EUR")
    with pytest.raises(PeriodError):
        prorate(M("30"), P(D(2024, 4, 1), D(2024, 4, 1)), P(D(2024, 4, 1), D(2024, 4, 1)), "EUR")


def test_a_pause_leaves_its_days_out() -> None:
    april = P(D(2024, 4, 1), D(2024, 5, 1))
    paused = BillingPeriod(april, april, 1, (P(D(2024, 4, 10), D(2024, 4, 20)),))
    assert charge(M("30.00"), paused, "EUR") == M("20.00")
    assert charge(M("30.00"), whole(april), "EUR") == M("30.00")
    # a vacation booked after April was billed in advance: its days are credited
    assert pause_credit(M("30.00"), whole(april), [P(D(2024, 4, 10), D(2024, 4, 20))], "EUR") == M("10.00")
    # days already paused are not credited twice
    assert pause_credit(M("30.00"), paused, [P(D(2024, 4, 15), D(2024, 4, 25))], "EUR") == M("5.00")
    # through the billing run: paused 10-19 April, charged for the other 20 days
    (due,) = periods_to_bill(D(2024, 4, 1), Cycle(1), Timing.IN_ADVANCE, D(2024, 4, 1),
                             billed_until=D(2024, 4, 1), pauses=[P(D(2024, 4, 10), D(2024, 4, 20))])
    assert charge(M("30.00"), due, "EUR") == M("20.00")


def test_prepaid_daily_through_the_run_with_a_paused_day() -> None:
    due = prepaid_days_to_charge(D(2021, 11, 3), D(2021, 11, 1), pauses=[P(D(2021, 11, 2), D(2021, 11, 3))])
    assert [charge(M("40"), p, "USD") for p in due] == [M("1.33"), M("0.00"), M("1.33")]


def test_the_end_of_a_period_billed_in_advance_is_credited() -> None:
    april = P(D(2024, 4, 1), D(2024, 5, 1))
    # billed April in advance, the service ended after 19 April (end 20 April)
    assert prorate_ranges(M("30.00"), april, overbilled(D(2024, 4, 20), D(2024, 5, 1)), "EUR") == M("11.00")


def test_multi_month_periods_are_priced_as_months_times_the_price() -> None:
    year = P(D(2024, 4, 1), D(2025, 4, 1))
    assert charge(M("10.00") * 12, whole(year, 12), "EUR") == M("120.00")
    # cut after 73 of its 365 days
    cut = BillingPeriod(P(D(2024, 4, 1), D(2024, 6, 13)), year, 12)
    assert charge(M("10.00") * 12, cut, "EUR") == M("24.00")


def test_plan_change_fees_and_edges() -> None:
    nov = whole(NOVEMBER_2021)
    fees = ChangeFees(up=M("5"), down=M("2.5"))
    assert plan_change(M("100"), M("200"), nov, D(2021, 11, 16), "EUR", fees).fee == M("5.00")
    assert plan_change(M("200"), M("100"), nov, D(2021, 11, 16), "EUR", fees).fee == M("2.50")
    assert plan_change(M("100"), M("100"), nov, D(2021, 11, 16), "EUR", fees).fee == M("0.00")
    # on the first day: the whole old charge is credited, the whole new one charged
    first = plan_change(M("200"), M("100"), nov, D(2021, 11, 1), "EUR")
    assert (first.used, first.credit, first.charge) == (M("0.00"), M("200.00"), M("100.00"))
    with pytest.raises(PeriodError):
        plan_change(M("200"), M("100"), nov, D(2021, 12, 1), "EUR")
    with pytest.raises(PeriodError):
        plan_change(M("200"), M("100"), nov, D(2021, 10, 31), "EUR")


def test_plan_change_in_a_prorated_first_period_with_a_pause() -> None:
    # started 15 March (stub of March's 31 days), paused 20-24 March, changed on 25 March
    stub = BillingPeriod(P(D(2024, 3, 15), D(2024, 4, 1)), P(D(2024, 3, 1), D(2024, 4, 1)), 1,
                         (P(D(2024, 3, 20), D(2024, 3, 25)),))
    change = plan_change(M("31.00"), M("62.00"), stub, D(2024, 3, 25), "EUR")
    assert change.used == M("5.00")  # 15-19 March
    assert change.credit == M("7.00")  # 25-31 March at the old price
    assert change.charge == M("14.00")  # and at the new
    assert change.used + change.credit == charge(M("31.00"), stub, "EUR") == M("12.00")


# -- properties -----------------------------------------------------------------------------------

currencies = st.sampled_from(["EUR", "JPY", "KWD", "USD"])
dates = st.dates(D(2020, 1, 1), D(2030, 12, 31))


@st.composite
def money(draw: st.DrawFn, currency: str, max_units: int = 10**7) -> Decimal:
    """An amount in whole minor units of ``currency``."""
    return Decimal(draw(st.integers(0, max_units))).scaleb(-digits(currency))


@st.composite
def priced(draw: st.DrawFn) -> tuple[str, Decimal]:
    currency = draw(currencies)
    return currency, draw(money(currency))


@given(priced(), st.integers(1, 28), st.sampled_from([1, 2, 3, 6, 12]), dates, st.integers(1, 4), st.data())
def test_prorated_parts_tiling_whole_periods_sum_to_the_price_times_the_periods(
        price: tuple[str, Decimal], billing_day: int, months: int, anchor: date, count: int,
        data: st.DataObject) -> None:
    currency, amount = price
    cycle = Cycle(billing_day, months)
    first = period_containing(anchor, cycle, anchor.replace(day=billing_day))
    grid = [Period(add_months(first.start, k * months), add_months(first.start, (k + 1) * months))
            for k in range(count)]
    span_days = (grid[-1].end - grid[0].start).days
    cuts = data.draw(st.lists(st.integers(1, span_days - 1), max_size=12, unique=True))
    points = [grid[0].start + timedelta(days=c) for c in sorted({0, span_days, *cuts})]
    total = Decimal(0)
    for a, b in itertools.pairwise(points):
        for full in grid:  # a part may straddle a boundary: each period prices its own days
            if (piece := Period(a, b).intersection(full)) is not None:
                total += prorate(amount, full, piece, currency)
    assert total == amount * count


@given(priced(), dates)
def test_the_days_of_any_month_sum_to_the_monthly_price(price: tuple[str, Decimal], day: date) -> None:
    currency, amount = price
    month = calendar_month(day)
    days = [month.start + timedelta(days=k) for k in range(month.days)]
    charges = [daily_charge(amount, d, currency) for d in days]
    assert sum(charges) == amount
    unit = Decimal(1).scaleb(-digits(currency))
    exact = amount / month.days
    assert all(abs(c - exact) < unit for c in charges)  # each day within a minor unit of the rate


@given(priced(), dates, st.integers(1, 400), st.data())
def test_cumulative_rounding_stays_within_one_minor_unit_of_rounding_the_part(
        price: tuple[str, Decimal], start: date, length: int, data: st.DataObject) -> None:
    currency, amount = price
    full = Period(start, start + timedelta(days=length))
    a = data.draw(st.integers(0, length))
    b = data.draw(st.integers(a, length))
    part = Period(start + timedelta(days=a), start + timedelta(days=b))
    got = prorate(amount, full, part, currency)
    per_total = quantize(amount * part.days / full.days, currency)
    assert abs(got - per_total) <= Decimal(1).scaleb(-digits(currency))
    if a == 0:
        assert got == per_total  # from the period's start it is the rounded total (Splynx's figure)


@st.composite
def billing_periods(draw: st.DrawFn) -> BillingPeriod:
    start = draw(dates)
    full = Period(start, start + timedelta(days=draw(st.integers(1, 370))))
    a = draw(st.integers(0, full.days - 1))
    b = draw(st.integers(a + 1, full.days))
    billed = Period(start + timedelta(days=a), start + timedelta(days=b))
    return BillingPeriod(billed, full, None, clip(draw(pause_lists(full)), billed))


def pause_lists(within: Period) -> st.SearchStrategy[list[Period]]:
    offsets = st.integers(0, within.days)
    return st.lists(st.tuples(offsets, offsets).map(
        lambda ab: Period(within.start + timedelta(days=min(ab)), within.start + timedelta(days=max(ab)))),
        max_size=4)


@given(priced(), billing_periods(), st.data())
def test_a_pause_never_increases_the_charge(price: tuple[str, Decimal], period: BillingPeriod,
                                            data: st.DataObject) -> None:
    currency, amount = price
    more = data.draw(pause_lists(period.full))
    paused_more = BillingPeriod(period.billed, period.full, None, merge([*period.paused, *clip(more, period.billed)]))
    before, after = charge(amount, period, currency), charge(amount, paused_more, currency)
    assert Decimal(0) <= after <= before
    assert before - after == pause_credit(amount, period, more, currency)  # the credit is exact
    unpaused = BillingPeriod(period.billed, period.full, None)
    assert charge(amount, unpaused, currency) == prorate(amount, period.full, period.billed, currency) >= before


@given(currencies, billing_periods(), st.data())
def test_a_plan_change_credits_and_charges_the_rest_exactly(currency: str, period: BillingPeriod,
                                                            data: st.DataObject) -> None:
    old, new = data.draw(money(currency)), data.draw(money(currency))
    on = period.billed.start + timedelta(days=data.draw(st.integers(0, period.billed.days - 1)))
    fees = ChangeFees(up=data.draw(money(currency, 10**4)), down=data.draw(money(currency, 10**4)))
    change = plan_change(old, new, period, on, currency, fees)
    used_days = subtract(Period(period.billed.start, on), period.paused)
    rest_days = subtract(Period(on, period.billed.end), period.paused)
    old_for_used = prorate_ranges(old, period.full, used_days, currency)
    new_for_rest = prorate_ranges(new, period.full, rest_days, currency)
    old_charge = charge(old, period, currency)
    # what was charged, less the credit, plus the new charge: the old plan for the used days and
    # the new one for the rest, to the minor unit
    assert old_charge - change.credit + change.charge == old_for_used + new_for_rest
    assert change.used == old_for_used and change.used + change.credit == old_charge
    assert change.charge == new_for_rest
    assert change.fee == (fees.up if new > old else fees.down if new < old else Decimal(0))
    assert change.credit >= 0 and change.charge >= 0
