"""Dunning dates and decisions: weekends, public holidays (Austria, Germany), the ISP's own days,
month and year ends, the minimum balance as a credit limit, prepaid customers, and properties
(a customer walked day by day is blocked and deactivated exactly on the scheduled days)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import holidays
import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.billing.dunning import (
    Action,
    DunningError,
    Schedule,
    Settings,
    Unpaid,
    decide,
    is_working_day,
    next_working_day,
    schedule,
)
from admin.customers import lifecycle

D = dt.date
AT = Settings(holiday_country="AT")
DE = Settings(holiday_country="DE")


def test_holidays_the_tests_rely_on() -> None:
    for day in (D(2026, 12, 25), D(2026, 12, 26), D(2027, 1, 1), D(2027, 1, 6)):
        assert not is_working_day(day, AT)
    assert is_working_day(D(2027, 1, 6), DE)  # Epiphany is not a holiday in all of Germany,
    assert not is_working_day(D(2027, 1, 6), Settings(holiday_country="DE", holiday_subdivision="BY"))  # in Bavaria
    assert not is_working_day(D(2026, 4, 3), DE) and is_working_day(D(2026, 4, 3), AT)  # Good Friday
    assert not is_working_day(D(2026, 3, 14), Settings())  # a Saturday, with no country at all
    assert is_working_day(D(2027, 1, 1), Settings())  # a Friday: no country, no holidays


@pytest.mark.parametrize(("settings", "invoice", "expected"), [
    # the defaults: due in 15 days, blocked on the due date, inactive 10 days later
    (Settings(), D(2026, 3, 1), Schedule(D(2026, 3, 16), D(2026, 3, 16), D(2026, 3, 26))),
    # blocked the day after a Friday due date: Saturday -> Monday; deactivation counts from Monday
    (Settings(block_after_due_days=1), D(2026, 3, 6), Schedule(D(2026, 3, 21), D(2026, 3, 23), D(2026, 4, 2))),
    # the same with weekend blocking allowed: nothing moves
    (Settings(block_after_due_days=1, block_on_non_working_days=True), D(2026, 3, 6),
     Schedule(D(2026, 3, 21), D(2026, 3, 22), D(2026, 4, 1))),
    # Austria's Christmas: due Friday 25 Dec (holiday), 26 (holiday, Saturday), 27 (Sunday) -> Monday 28;
    # inactive 4 days later: Friday 1 Jan 2027 (holiday), weekend -> Monday 4 Jan
    (Settings(holiday_country="AT", deactivate_after_block_days=4), D(2026, 12, 10),
     Schedule(D(2026, 12, 25), D(2026, 12, 28), D(2027, 1, 4))),
    # Germany: the same dates (25 and 26 Dec, 1 Jan are national holidays there too)
    (Settings(holiday_country="DE", deactivate_after_block_days=4), D(2026, 12, 10),
     Schedule(D(2026, 12, 25), D(2026, 12, 28), D(2027, 1, 4))),
    # without a country only the weekend moves: Friday 25 Dec stays
    (Settings(deactivate_after_block_days=4), D(2026, 12, 10),
     Schedule(D(2026, 12, 25), D(2026, 12, 25), D(2026, 12, 29))),
    # Epiphany: Austria moves Wednesday 6 Jan 2027 to Thursday, Germany (national) does not
    (Settings(holiday_country="AT", due_days=0, deactivate_after_block_days=1), D(2027, 1, 5),
     Schedule(D(2027, 1, 5), D(2027, 1, 5), D(2027, 1, 7))),
    (Settings(holiday_country="DE", due_days=0, deactivate_after_block_days=1), D(2027, 1, 5),
     Schedule(D(2027, 1, 5), D(2027, 1, 5), D(2027, 1, 6))),
    # across the year end: due 1 Jan 2027 (the due date itself is never moved), blocked Monday 4 Jan
    (AT, D(2026, 12, 17), Schedule(D(2027, 1, 1), D(2027, 1, 4), D(2027, 1, 14))),
    # a month end: 31 Jan + 28 days = Saturday 28 Feb -> Monday 2 March
    (Settings(due_days=28), D(2026, 1, 31), Schedule(D(2026, 2, 28), D(2026, 3, 2), D(2026, 3, 12))),
    # a leap year: 31 Jan 2028 + 29 days = Tuesday 29 Feb
    (Settings(due_days=29), D(2028, 1, 31), Schedule(D(2028, 2, 29), D(2028, 2, 29), D(2028, 3, 10))),
    # the ISP's own days: 16 March closed -> 17; 27 March closed too -> deactivation on 30 (after a weekend)
    (Settings(isp_days=frozenset({D(2026, 3, 16), D(2026, 3, 27)})), D(2026, 3, 1),
     Schedule(D(2026, 3, 16), D(2026, 3, 17), D(2026, 3, 30))),
    # "Do not block": neither blocked nor deactivated
    (Settings(block_after_due_days=None), D(2026, 3, 1), Schedule(D(2026, 3, 16), None, None)),
    (Settings(deactivate_after_block_days=None), D(2026, 3, 1), Schedule(D(2026, 3, 16), D(2026, 3, 16), None)),
])
def test_schedules(settings: Settings, invoice: dt.date, expected: Schedule) -> None:
    assert schedule(invoice, settings) == expected


def test_an_invoice_with_its_own_due_date_keeps_it() -> None:
    assert schedule(D(2026, 3, 1), Settings(), due_on=D(2026, 3, 31)) == Schedule(
        D(2026, 3, 31), D(2026, 3, 31), D(2026, 4, 10))


def test_next_working_day() -> None:
    assert next_working_day(D(2026, 12, 24), AT) == D(2026, 12, 24)
    assert next_working_day(D(2026, 12, 25), AT) == D(2026, 12, 28)
    assert next_working_day(D(2026, 12, 31), AT) == D(2026, 12, 31)
    assert next_working_day(D(2027, 1, 1), AT) == D(2027, 1, 4)
    everyday = frozenset(D(2026, 1, 1) + dt.timedelta(days=i) for i in range(400))
    with pytest.raises(DunningError, match="no working day in the year from 2026-01-01"):
        next_working_day(D(2026, 1, 1), Settings(isp_days=everyday))


# --- decisions --------------------------------------------------------------------------------

INVOICE = [Unpaid(D(2026, 3, 1))]  # due, blocked 16 March (Monday), inactive 26 March (Thursday)
OWING = Decimal("-30.00")


@pytest.mark.parametrize(("today", "status", "expected"), [
    (D(2026, 3, 15), "active", Action.NONE),  # not due yet
    (D(2026, 3, 16), "active", Action.BLOCK),  # the blocking date
    (D(2026, 3, 20), "active", Action.BLOCK),  # a missed day catches up
    (D(2026, 3, 21), "active", Action.NONE),  # ... but never on a Saturday
    (D(2026, 3, 20), "blocked", Action.NONE),  # blocked, and still billed
    (D(2026, 3, 26), "blocked", Action.DEACTIVATE),  # not paid by the deactivation date
    (D(2026, 3, 26), "active", Action.DEACTIVATE),  # straight to inactive if it was never blocked
    (D(2026, 3, 28), "blocked", Action.NONE),  # not on a Saturday either
    (D(2026, 3, 30), "inactive", Action.NONE),  # inactive and still owing
    (D(2026, 3, 30), "new", Action.NONE),  # not connected yet: dunning leaves it
    (D(2026, 3, 30), "deleted", Action.NONE),
])
def test_an_unpaid_recurring_customer(today: dt.date, status: str, expected: Action) -> None:
    assert decide(today, status, INVOICE, OWING, Settings()) is expected


def test_paying_lifts_the_block_at_once_even_on_a_sunday() -> None:
    sunday = D(2026, 3, 22)
    assert decide(sunday, "blocked", [], Decimal("0.00"), Settings()) is Action.UNBLOCK
    assert decide(sunday, "inactive", [], Decimal("5.00"), AT) is Action.ACTIVATE
    # paid the old invoice; the new one is not past its blocking date: active again
    newer = [Unpaid(D(2026, 3, 20))]
    assert decide(sunday, "blocked", newer, Decimal("-30.00"), Settings()) is Action.UNBLOCK
    # a block staff set by hand is not lifted by a payment, nor an inactive customer who left
    assert decide(sunday, "blocked", [], Decimal("0.00"), Settings(), by_dunning=False) is Action.NONE
    assert decide(sunday, "inactive", [], Decimal("0.00"), Settings(), by_dunning=False) is Action.NONE
    # ... but an unpaid one is still deactivated on time
    assert decide(D(2026, 3, 26), "blocked", INVOICE, OWING, Settings(), by_dunning=False) is Action.DEACTIVATE


def test_an_inactive_customer_who_pays_only_part_stays_inactive() -> None:
    two = [Unpaid(D(2026, 2, 1)), Unpaid(D(2026, 3, 1))]
    assert decide(D(2026, 3, 30), "inactive", two, Decimal("-60.00"), Settings()) is Action.NONE
    # the February invoice paid, March's still past its blocking date: not active yet
    assert decide(D(2026, 3, 30), "inactive", two[1:], Decimal("-30.00"), Settings()) is Action.NONE
    assert decide(D(2026, 3, 30), "inactive", [], Decimal("0.00"), Settings()) is Action.ACTIVATE


def test_weekend_blocking_allowed_blocks_on_saturday() -> None:
    settings = Settings(block_on_non_working_days=True, holiday_country="AT")
    assert decide(D(2026, 3, 21), "active", INVOICE, OWING, settings) is Action.BLOCK
    assert decide(D(2026, 12, 25), "active", [Unpaid(D(2026, 12, 10))], OWING, settings) is Action.BLOCK
    assert decide(D(2026, 12, 25), "active", [Unpaid(D(2026, 12, 10))], OWING, AT) is Action.NONE
    assert decide(D(2026, 12, 28), "active", [Unpaid(D(2026, 12, 10))], OWING, AT) is Action.BLOCK


def test_an_isp_day_holds_the_block() -> None:
    settings = Settings(isp_days=frozenset({D(2026, 3, 16)}))
    assert decide(D(2026, 3, 16), "active", INVOICE, OWING, settings) is Action.NONE
    assert decide(D(2026, 3, 17), "active", INVOICE, OWING, settings) is Action.BLOCK


@pytest.mark.parametrize(("balance", "expected"), [
    (Decimal("-30.00"), Action.NONE),  # within the credit limit of 50
    (Decimal("-50.00"), Action.NONE),  # at it
    (Decimal("-50.01"), Action.BLOCK),  # over it
])
def test_a_negative_minimum_balance_is_a_credit_limit(balance: Decimal, expected: Action) -> None:
    settings = Settings(min_balance=Decimal("-50.00"))
    assert decide(D(2026, 3, 16), "active", INVOICE, balance, settings) is expected


def test_a_positive_minimum_blocks_even_a_small_positive_balance_with_an_overdue_invoice() -> None:
    settings = Settings(min_balance=Decimal("10.00"))
    assert decide(D(2026, 3, 16), "active", INVOICE, Decimal("5.00"), settings) is Action.BLOCK
    assert decide(D(2026, 3, 16), "active", [], Decimal("5.00"), settings) is Action.NONE  # nothing overdue


def test_nothing_overdue_never_blocks_a_recurring_customer() -> None:
    assert decide(D(2026, 3, 16), "active", [], Decimal("-500.00"), Settings()) is Action.NONE


PREPAID = Settings(prepaid=True)


@pytest.mark.parametrize(("balance", "status", "expected"), [
    # Splynx's example: 20 USD deposit at 1.33 a day lasts 15 days (0.05 left), the 16th takes it below
    (Decimal("0.05"), "active", Action.NONE),
    (Decimal("0.00"), "active", Action.BLOCK),  # "blocked when the balance reaches the minimum"
    (Decimal("-1.28"), "active", Action.BLOCK),
    (Decimal("-1.28"), "blocked", Action.NONE),
    (Decimal("20.00"), "blocked", Action.UNBLOCK),  # topped up
    (Decimal("0.01"), "inactive", Action.ACTIVATE),
])
def test_a_prepaid_customer_follows_its_balance(balance: Decimal, status: str, expected: Action) -> None:
    assert decide(D(2026, 3, 18), status, [], balance, PREPAID) is expected
    # invoices do not matter to a prepaid customer
    assert decide(D(2026, 3, 18), status, INVOICE, balance, PREPAID) is expected


def test_a_prepaid_credit_limit_and_deactivation() -> None:
    limit = Settings(prepaid=True, min_balance=Decimal("-10.00"))
    assert decide(D(2026, 3, 18), "active", [], Decimal("-9.99"), limit) is Action.NONE
    assert decide(D(2026, 3, 18), "active", [], Decimal("-10.00"), limit) is Action.BLOCK
    # blocked Monday 2 March, deactivated 10 days later: Thursday 12 March
    blocked_on = D(2026, 3, 2)
    assert decide(D(2026, 3, 11), "blocked", [], Decimal("-12.00"), limit, blocked_on=blocked_on) is Action.NONE
    assert decide(D(2026, 3, 12), "blocked", [], Decimal("-12.00"), limit, blocked_on=blocked_on) is Action.DEACTIVATE
    assert decide(D(2026, 3, 12), "blocked", [], Decimal("-12.00"), limit) is Action.NONE  # when blocked is unknown
    # blocked Monday 2 Feb 2026 with 26 days: Saturday 28 Feb -> Monday 2 March
    late = Settings(prepaid=True, deactivate_after_block_days=26)
    assert decide(D(2026, 2, 28), "blocked", [], Decimal("-1"), late, blocked_on=D(2026, 2, 2)) is Action.NONE
    assert decide(D(2026, 3, 2), "blocked", [], Decimal("-1"), late, blocked_on=D(2026, 3, 2)) is Action.NONE
    assert decide(D(2026, 3, 2), "blocked", [], Decimal("-1"), late, blocked_on=D(2026, 2, 2)) is Action.DEACTIVATE
    # a prepaid customer on "Do not block" is never blocked
    assert decide(D(2026, 3, 18), "active", [], Decimal("-5"), Settings(prepaid=True, block_after_due_days=None)) \
        is Action.NONE


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Settings(due_days=-1), "due_days must be a number of days from 0 to 365, not -1"),
    (lambda: Settings(block_after_due_days=400),
     "block_after_due_days must be a number of days from 0 to 365, not 400"),
    (lambda: Settings(deactivate_after_block_days=True), "deactivate_after_block_days must be a number of days from "
                                                         "0 to 365, not True"),
    (lambda: Settings(due_days=None), "due_days must be a number of days from 0 to 365, not None"),  # type: ignore[arg-type]
    (lambda: Settings(min_balance=-50.0), "min_balance must be a Decimal amount, not -50.0"),  # type: ignore[arg-type]
    (lambda: Settings(min_balance=Decimal("NaN")), "min_balance must be a Decimal amount, not Decimal('NaN')"),
    (lambda: Settings(holiday_country="XX"), "no public holidays are known for 'XX' (Country XX not available)"),
    (lambda: Settings(holiday_country="DE", holiday_subdivision="ZZ"),
     "no public holidays are known for 'DE-ZZ' (Entity `DE` does not have subdivision ZZ)"),
    (lambda: Settings(holiday_subdivision="BY"), "holiday_subdivision 'BY' needs a holiday_country"),
])
def test_bad_settings_are_refused(make: object, message: str) -> None:
    assert callable(make)
    with pytest.raises(DunningError) as err:
        make()
    assert str(err.value) == message


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(DunningError, match="balance must be a Decimal, not float"):
        decide(D(2026, 3, 16), "active", INVOICE, -30.0, Settings())  # type: ignore[arg-type]
    with pytest.raises(DunningError, match="unknown customer status 'suspended'"):
        decide(D(2026, 3, 16), "suspended", INVOICE, OWING, Settings())


# --- properties -------------------------------------------------------------------------------

days = st.dates(D(2025, 11, 1), D(2028, 2, 28))  # covers year ends, two Christmases and a leap day


@st.composite
def settings_(draw: st.DrawFn) -> Settings:
    return Settings(
        due_days=draw(st.integers(0, 40)),
        block_after_due_days=draw(st.none() | st.integers(0, 15)),
        deactivate_after_block_days=draw(st.none() | st.integers(0, 30)),
        min_balance=draw(st.sampled_from([Decimal("0"), Decimal("-50.00"), Decimal("10.00")])),
        prepaid=draw(st.booleans()),
        block_on_non_working_days=draw(st.booleans()),
        holiday_country=draw(st.sampled_from([None, "AT", "DE"])),
        isp_days=frozenset(draw(st.lists(days, max_size=20))),
    )


def _first_working_from(day: dt.date, settings: Settings) -> dt.date:
    """The first day from ``day`` on that is no weekend, public holiday or ISP day (asked of the
    holidays package directly, not through the module under test)."""
    country = settings.holiday_country
    public = holidays.country_holidays(country, years=range(2025, 2030)) if country else {}
    while day.weekday() >= 5 or day in settings.isp_days or day in public:
        day += dt.timedelta(days=1)
    return day


@given(days, settings_())
def test_blocking_and_deactivation_land_on_the_first_allowed_day(invoice: dt.date, settings: Settings) -> None:
    s = schedule(invoice, settings)
    assert s.due_on == invoice + dt.timedelta(days=settings.due_days)
    if settings.block_after_due_days is None:
        assert s.block_on is None and s.deactivate_on is None
        return
    nominal_block = s.due_on + dt.timedelta(days=settings.block_after_due_days)
    assert s.block_on is not None
    if settings.block_on_non_working_days:
        assert s.block_on == nominal_block
    else:
        assert s.block_on == _first_working_from(nominal_block, settings)
        assert is_working_day(s.block_on, settings)
    if settings.deactivate_after_block_days is None:
        assert s.deactivate_on is None
        return
    assert s.deactivate_on is not None
    nominal = s.block_on + dt.timedelta(days=settings.deactivate_after_block_days)
    moved = nominal if settings.block_on_non_working_days else _first_working_from(nominal, settings)
    assert s.deactivate_on == moved


@given(days, settings_(), st.integers(1, 120), st.sampled_from(["new", "active", "blocked", "inactive", "deleted"]),
       st.integers(-100, 100), st.booleans())
def test_every_decision_is_a_move_the_lifecycle_allows(invoice: dt.date, settings: Settings, after: int, status: str,
                                                        balance: int, by_dunning: bool) -> None:
    today = invoice + dt.timedelta(days=after)
    action = decide(today, status, [Unpaid(invoice)], Decimal(balance), settings,
                    blocked_on=invoice if status == "blocked" else None, by_dunning=by_dunning)
    if action is not Action.NONE:
        lifecycle.move(status, action.value)  # raises when the lifecycle has no such move


@given(days, settings_().filter(lambda s: not s.prepaid), st.integers(0, 80))
def test_an_unpaid_customer_walked_day_by_day(invoice: dt.date, settings: Settings, pays_after: int) -> None:
    """Blocked on the blocking date, inactive on the deactivation date, nothing else in between,
    and active again on the very day it pays (whatever day that is)."""
    s = schedule(invoice, settings)
    owed = settings.min_balance - Decimal("30.00")
    status, changes = "active", []
    day, pays_on = invoice, invoice + dt.timedelta(days=pays_after)
    while day < pays_on:
        action = decide(day, status, [Unpaid(invoice)], owed, settings)
        if action is not Action.NONE:
            status = lifecycle.move(status, action.value)
            changes.append((day, status))
        day += dt.timedelta(days=1)
    expected = []
    if s.block_on is not None and s.block_on < pays_on:
        expected.append((s.block_on, "inactive" if s.deactivate_on == s.block_on else "blocked"))
        if s.deactivate_on is not None and s.block_on < s.deactivate_on < pays_on:
            expected.append((s.deactivate_on, "inactive"))
    assert changes == expected
    paid = decide(pays_on, status, [], settings.min_balance, settings)
    assert paid is {"active": Action.NONE, "blocked": Action.UNBLOCK, "inactive": Action.ACTIVATE}[status]
