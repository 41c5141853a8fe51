"""Allocation of payments and credit notes to debts: Splynx's order (debit transactions first, then
invoices oldest first), targeted payments, overpayment, and properties over random ledgers."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.billing import money
from admin.billing.allocation import (
    Allocation,
    AllocationError,
    Credit,
    CreditKind,
    Debt,
    DebtKind,
    allocate,
)
from admin.billing.periods import Period

P, CN = CreditKind.PAYMENT, CreditKind.CREDIT_NOTE
TX, INV = DebtKind.TRANSACTION, DebtKind.INVOICE
D = dt.date
MARCH = Period(D(2026, 3, 1), D(2026, 4, 1))  # periods are half-open: [1 March, 1 April)
APRIL = Period(D(2026, 4, 1), D(2026, 5, 1))


def rows(result_rows: tuple[Allocation, ...]) -> list[tuple[str, int, str, int, str]]:
    return [(a.source[0].value, a.source[1], a.target[0].value, a.target[1], str(a.amount)) for a in result_rows]


def test_transactions_are_paid_before_invoices_and_invoices_oldest_first() -> None:
    debts = [Debt(INV, 11, D(2026, 4, 1), Decimal("30.00")),
             Debt(INV, 10, D(2026, 3, 1), Decimal("30.00")),
             Debt(TX, 5, D(2026, 4, 20), Decimal("15.50"))]  # a fee, younger than both invoices
    result = allocate([Credit(P, 1, D(2026, 4, 25), Decimal("50.00"))], debts, "EUR")
    assert rows(result.allocations) == [("payment", 1, "ledger_entry", 5, "15.50"),
                                        ("payment", 1, "invoice", 10, "30.00"),
                                        ("payment", 1, "invoice", 11, "4.50")]
    assert result.debt_rest == {(TX, 5): Decimal("0.00"), (INV, 10): Decimal("0.00"), (INV, 11): Decimal("25.50")}
    assert result.credit_rest == {(P, 1): Decimal("0.00")}
    assert result.open == Decimal("25.50") and result.unallocated == 0


def test_an_overpayment_stays_on_the_balance_and_pays_the_next_invoice_later() -> None:
    first = allocate([Credit(P, 1, D(2026, 3, 5), Decimal("100.00"))],
                     [Debt(INV, 10, D(2026, 3, 1), Decimal("40.00"))], "EUR")
    assert rows(first.allocations) == [("payment", 1, "invoice", 10, "40.00")]
    assert first.credit_rest == {(P, 1): Decimal("60.00")}  # the invoice is not overpaid
    assert first.unallocated == Decimal("60.00")
    # April's invoice is billed: the rest of the payment meets it
    later = allocate([Credit(P, 1, D(2026, 3, 5), first.credit_rest[(P, 1)])],
                     [Debt(INV, 11, D(2026, 4, 1), Decimal("40.00"))], "EUR")
    assert rows(later.allocations) == [("payment", 1, "invoice", 11, "40.00")]
    assert later.credit_rest == {(P, 1): Decimal("20.00")}


def test_credits_go_oldest_first_and_ties_are_broken_by_id() -> None:
    credits = [Credit(P, 7, D(2026, 3, 10), Decimal("10.00")),
               Credit(CN, 3, D(2026, 3, 10), Decimal("10.00")),
               Credit(P, 2, D(2026, 3, 11), Decimal("10.00"))]
    debts = [Debt(INV, 2, D(2026, 3, 1), Decimal("12.00")), Debt(INV, 1, D(2026, 3, 1), Decimal("12.00"))]
    result = allocate(credits, debts, "EUR")
    assert rows(result.allocations) == [("credit_note", 3, "invoice", 1, "10.00"),
                                        ("payment", 7, "invoice", 1, "2.00"),
                                        ("payment", 7, "invoice", 2, "8.00"),
                                        ("payment", 2, "invoice", 2, "4.00")]
    assert result.credit_rest[(P, 2)] == Decimal("6.00")
    assert allocate(reversed(credits), reversed(debts), "EUR") == result  # the input order does not matter


def test_a_payment_for_a_service_and_a_period_pays_that_charge_first() -> None:
    debts = [Debt(TX, 1, D(2026, 3, 2), Decimal("5.00")),  # a fee
             Debt(INV, 10, D(2026, 3, 1), Decimal("20.00"), service_id=7, period=MARCH),
             Debt(INV, 11, D(2026, 4, 1), Decimal("20.00"), service_id=7, period=APRIL),
             Debt(INV, 12, D(2026, 4, 1), Decimal("9.00"), service_id=8, period=APRIL)]
    paid_for_april = Credit(P, 1, D(2026, 4, 3), Decimal("30.00"), service_id=7, period=APRIL)
    result = allocate([paid_for_april], debts, "EUR")
    assert rows(result.allocations) == [("payment", 1, "invoice", 11, "20.00"),  # what it names
                                        ("payment", 1, "ledger_entry", 1, "5.00"),  # then the default order
                                        ("payment", 1, "invoice", 10, "5.00")]
    assert result.debt_rest[(INV, 10)] == Decimal("15.00")
    assert result.debt_rest[(INV, 12)] == Decimal("9.00")


def test_a_named_period_covers_the_charges_inside_it_and_the_service_all_its_periods() -> None:
    debts = [Debt(INV, 10, D(2026, 3, 1), Decimal("20.00"), service_id=7, period=MARCH),
             Debt(INV, 11, D(2026, 4, 1), Decimal("20.00"), service_id=7, period=APRIL),
             Debt(INV, 9, D(2026, 2, 1), Decimal("20.00"), service_id=8, period=MARCH)]
    quarter = Period(D(2026, 3, 1), D(2026, 6, 1))
    result = allocate([Credit(P, 1, D(2026, 4, 3), Decimal("25.00"), service_id=7, period=quarter)], debts, "EUR")
    assert rows(result.allocations) == [("payment", 1, "invoice", 10, "20.00"), ("payment", 1, "invoice", 11, "5.00")]
    result = allocate([Credit(P, 1, D(2026, 4, 3), Decimal("25.00"), service_id=7)], debts, "EUR")
    assert rows(result.allocations) == [("payment", 1, "invoice", 10, "20.00"), ("payment", 1, "invoice", 11, "5.00")]
    # a period wider than the named one is not "within" it: the default order (invoice 9 first)
    result = allocate([Credit(P, 1, D(2026, 4, 3), Decimal("25.00"), service_id=7,
                              period=Period(D(2026, 3, 1), D(2026, 3, 16)))], debts, "EUR")
    assert rows(result.allocations) == [("payment", 1, "invoice", 9, "20.00"), ("payment", 1, "invoice", 10, "5.00")]


def test_a_credit_note_pays_its_own_invoice_first() -> None:
    debts = [Debt(INV, 10, D(2026, 3, 1), Decimal("20.00")), Debt(INV, 11, D(2026, 4, 1), Decimal("50.00"))]
    result = allocate([Credit(CN, 4, D(2026, 4, 16), Decimal("100.00"), debt=(INV, 11))], debts, "EUR")
    assert rows(result.allocations) == [("credit_note", 4, "invoice", 11, "50.00"),
                                        ("credit_note", 4, "invoice", 10, "20.00")]
    assert result.credit_rest == {(CN, 4): Decimal("30.00")}


def test_a_targeted_payment_with_nothing_to_match_follows_the_default_order() -> None:
    result = allocate([Credit(P, 1, D(2026, 4, 3), Decimal("3"), service_id=99)],
                      [Debt(INV, 10, D(2026, 3, 1), Decimal("2"))], "JPY")
    assert rows(result.allocations) == [("payment", 1, "invoice", 10, "2")]
    assert result.credit_rest == {(P, 1): Decimal("1")}


def test_nothing_to_allocate() -> None:
    result = allocate([], [Debt(INV, 1, D(2026, 1, 1), Decimal("1.00"))], "EUR")
    assert result.allocations == () and result.debt_rest == {(INV, 1): Decimal("1.00")} and result.unallocated == 0
    result = allocate([Credit(P, 1, D(2026, 1, 1), Decimal("0.00"))], [Debt(INV, 1, D(2026, 1, 1), Decimal("0"))],
                      "EUR")
    assert result.allocations == ()


@pytest.mark.parametrize(("credits", "debts", "message"), [
    ([Credit(P, 1, D(2026, 1, 1), Decimal("1.005"))], [], "payment 1: 1.005 is not a whole number of 0.01 EUR"),
    ([], [Debt(INV, 1, D(2026, 1, 1), Decimal("-1.00"))], "invoice 1: the amount to allocate is negative (-1.00)"),
    ([Credit(P, 1, D(2026, 1, 1), Decimal("1")), Credit(P, 1, D(2026, 1, 2), Decimal("2"))], [],
     "payment 1 is given twice"),
    ([], [Debt(TX, 1, D(2026, 1, 1), Decimal("1")), Debt(TX, 1, D(2026, 1, 1), Decimal("1"))],
     "ledger_entry 1 is given twice"),
])
def test_bad_rows_are_refused(credits: list[Credit], debts: list[Debt], message: str) -> None:
    with pytest.raises(AllocationError) as err:
        allocate(credits, debts, "EUR")
    assert str(err.value) == message


def test_floats_are_refused_and_kinds_keep_ids_apart() -> None:
    with pytest.raises(ValueError, match="money must be a Decimal, not float"):
        allocate([Credit(P, 1, D(2026, 1, 1), 1.5)], [], "EUR")  # type: ignore[arg-type]
    # the same id may be a payment and a credit note: they are different rows
    assert allocate([Credit(P, 1, D(2026, 1, 1), Decimal("1")), Credit(CN, 1, D(2026, 1, 1), Decimal("1"))], [],
                    "EUR").unallocated == Decimal("2")


# --- properties -------------------------------------------------------------------------------

CURRENCIES = ["EUR", "JPY", "KWD"]
days = st.dates(D(2026, 1, 1), D(2026, 3, 31))
services = st.none() | st.integers(1, 3)
periods = st.none() | st.sampled_from([Period(D(2026, m, 1), D(2026, m + 1, 1)) for m in (1, 2, 3)]
                                      + [Period(D(2026, 1, 1), D(2026, 3, 1))])


def amounts(currency: str) -> st.SearchStrategy[Decimal]:
    unit = money.minor_unit(currency)
    return st.integers(0, 50_000).map(lambda n: n * unit)


@st.composite
def ledgers(draw: st.DrawFn) -> tuple[str, list[Credit], list[Debt]]:
    currency = draw(st.sampled_from(CURRENCIES))
    debt_ids = draw(st.lists(st.tuples(st.sampled_from([TX, INV]), st.integers(1, 30)), max_size=10, unique=True))
    debts = [Debt(kind, i, draw(days), draw(amounts(currency)), draw(services), draw(periods)) for kind, i in debt_ids]
    credit_ids = draw(st.lists(st.tuples(st.sampled_from([P, CN]), st.integers(1, 30)), max_size=8, unique=True))
    credits = []
    for kind, i in credit_ids:
        target: tuple[DebtKind, int] | None = None
        if draw(st.booleans()) and debt_ids:
            target = draw(st.sampled_from(debt_ids))
        credits.append(Credit(kind, i, draw(days), draw(amounts(currency)), draw(services), draw(periods), target))
    return currency, credits, debts


@given(ledgers())
def test_allocations_never_exceed_and_always_add_up(ledger: tuple[str, list[Credit], list[Debt]]) -> None:
    currency, credits, debts = ledger
    result = allocate(credits, debts, currency)
    unit = money.minor_unit(currency)
    given_from = {c.key: money.ZERO for c in credits}
    given_to = {d.key: money.ZERO for d in debts}
    for row in result.allocations:
        assert row.amount > 0
        assert money.quantize(row.amount, currency) == row.amount and row.amount % unit == 0
        given_from[row.source] += row.amount
        given_to[row.target] += row.amount
    pairs = [(r.source, r.target) for r in result.allocations]
    assert len(pairs) == len(set(pairs))  # one row per source and target
    for c in credits:
        assert 0 <= result.credit_rest[c.key] <= c.amount
        assert given_from[c.key] + result.credit_rest[c.key] == c.amount
    for d in debts:
        assert 0 <= result.debt_rest[d.key] <= d.amount
        assert given_to[d.key] + result.debt_rest[d.key] == d.amount
    # no debt is left open while a credit still has money (targets only change the order)
    assert result.unallocated == 0 or result.open == 0
    # and as much as can be placed is placed
    total_credit = sum((c.amount for c in credits), money.ZERO)
    total_debt = sum((d.amount for d in debts), money.ZERO)
    assert sum((r.amount for r in result.allocations), money.ZERO) == min(total_credit, total_debt)


@given(ledgers(), st.randoms(use_true_random=False))
def test_the_result_does_not_depend_on_the_input_order(ledger: tuple[str, list[Credit], list[Debt]],
                                                        rnd: random.Random) -> None:
    currency, credits, debts = ledger
    shuffled_credits, shuffled_debts = credits[:], debts[:]
    rnd.shuffle(shuffled_credits)
    rnd.shuffle(shuffled_debts)
    assert allocate(shuffled_credits, shuffled_debts, currency) == allocate(credits, debts, currency)


def _one_by_one(credits: list[Credit], debts: list[Debt],
                currency: str) -> tuple[list[Allocation], dict[tuple[DebtKind, int], Decimal]]:
    """Credits arriving one at a time: each call gets the debts' rests the previous one left."""
    rows_: list[Allocation] = []
    open_ = {d.key: d for d in debts}
    for credit in credits:
        step = allocate([credit], open_.values(), currency)
        rows_.extend(step.allocations)
        open_ = {d.key: Debt(d.kind, d.id, d.date, step.debt_rest[d.key], d.service_id, d.period)
                 for d in open_.values()}
    return rows_, {k: d.amount for k, d in open_.items()}


@given(ledgers())
def test_credits_one_by_one_give_what_all_at_once_gives(ledger: tuple[str, list[Credit], list[Debt]]) -> None:
    currency, credits, debts = ledger
    at_once = allocate(credits, debts, currency)
    in_order = sorted(credits, key=lambda c: (c.date, c.id, c.kind.value))
    one_rows, one_open = _one_by_one(in_order, debts, currency)
    assert one_rows == list(at_once.allocations)
    assert one_open == at_once.debt_rest


@given(ledgers())
def test_untargeted_credits_in_any_order_leave_the_same_debts_open(
        ledger: tuple[str, list[Credit], list[Debt]]) -> None:
    """With the default order only, which debts get paid depends on how much arrived, not on when."""
    currency, credits, debts = ledger
    plain = [Credit(c.kind, c.id, c.date, c.amount) for c in credits]
    _, open_backwards = _one_by_one(list(reversed(plain)), debts, currency)
    assert open_backwards == allocate(plain, debts, currency).debt_rest
