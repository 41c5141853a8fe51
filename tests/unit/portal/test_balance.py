"""The balance in plain words (admin/portal/balance.py): what it says for a customer who owes,
is in credit or owes nothing, with invoices of several lines, part payments, credit notes,
voids, prepaid charges, and a long history folded into "from before"."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from admin.portal.balance import Entry, explain

D = Decimal
NOV = dt.date(2026, 11, 1)
_ids = itertools.count(1)


def day(n: int) -> dt.date:
    return NOV + dt.timedelta(days=n - 1)


def invoice(n: int, number: str, *lines: str) -> list[Entry]:
    return [Entry(next(_ids), day(n), "charge", D(a), D(0), number, "invoice") for a in lines]


def paid(n: int, amount: str, number: str = "R-1") -> Entry:
    return Entry(next(_ids), day(n), "payment", D(0), D(amount), number, "receipt")


def void(n: int, of: list[Entry]) -> list[Entry]:
    return [Entry(next(_ids), day(n), "reversal", e.credit, e.debit, reverses_id=e.id) for e in of]


def test_an_invoice_less_a_part_payment() -> None:
    ex = explain([*invoice(1, "2026-0012", "20.00", "9.00"), paid(3, "5.00")], "EUR")
    assert ex.state == "owed" and ex.owed == D("24.00") and ex.balance == D("-24.00")
    assert ex.sentence() == ("You owe 24.00 EUR: invoice 2026-0012 of 1 Nov 2026 (29.00 EUR) "
                             "less a payment of 5.00 EUR on 3 Nov 2026.")
    assert [p.amount for p in ex.parts] == [D("-29.00"), D("5.00")]
    assert ex.parts[0].document == "2026-0012"


def test_only_what_came_since_the_balance_was_last_square() -> None:
    entries = [*invoice(1, "A-1", "10.00"), paid(2, "10.00"), *invoice(5, "A-2", "12.50")]
    ex = explain(entries, "EUR")
    assert ex.sentence() == "You owe 12.50 EUR: invoice A-2 of 5 Nov 2026 (12.50 EUR)."


def test_a_credit_from_before_is_taken_off_what_is_owed() -> None:
    entries = [paid(1, "3.00"), *invoice(2, "A-1", "29.00")]
    ex = explain(entries, "EUR")
    assert ex.sentence() == ("You owe 26.00 EUR: invoice A-1 of 2 Nov 2026 (29.00 EUR) "
                             "less a credit of 3.00 EUR from before.")
    assert ex.before == D("3.00") and [p.document for p in ex.parts] == ["A-1"]


def test_in_credit_after_paying_more_than_owed() -> None:
    entries = [*invoice(1, "A-1", "29.00"), paid(2, "29.00"), paid(3, "40.00", "R-2"), *invoice(4, "A-2", "30.00")]
    ex = explain(entries, "EUR")
    assert ex.state == "credit" and ex.owed == 0
    assert ex.sentence() == ("You have 10.00 EUR in credit: a payment of 40.00 EUR on 3 Nov 2026 "
                             "less invoice A-2 of 4 Nov 2026 (30.00 EUR).")


def test_settled() -> None:
    ex = explain([*invoice(1, "A-1", "5.00"), paid(1, "5.00")], "EUR")
    assert ex.state == "settled" and ex.parts == ()
    assert ex.sentence() == "You owe nothing: your balance is 0.00 EUR."
    assert explain([], "EUR").sentence() == "You owe nothing: your balance is 0.00 EUR."


def test_an_invoice_voided_in_the_window_drops_out() -> None:
    first = invoice(1, "A-1", "29.00", "1.00")
    entries = [*first, *invoice(2, "A-2", "10.00"), *void(3, first)]
    ex = explain(entries, "EUR")
    assert ex.sentence() == "You owe 10.00 EUR: invoice A-2 of 2 Nov 2026 (10.00 EUR)."


def test_a_payment_taken_back_names_its_receipt() -> None:
    bill = invoice(1, "A-1", "20.00")
    pay = paid(2, "20.00", "R-7")
    entries = [*bill, pay, *void(4, [pay])]
    ex = explain(entries, "EUR")
    # the window starts after the payment squared the balance; its reversal is named by its receipt
    assert ex.sentence() == "You owe 20.00 EUR: the payment R-7 taken back on 4 Nov 2026 (20.00 EUR)."


def test_a_credit_note_and_prepaid_charges_by_month() -> None:
    charges = [Entry(next(_ids), day(n), "charge", D("0.97"), D(0)) for n in (1, 2, 3)]
    note = Entry(next(_ids), day(4), "credit_note", D(0), D("0.50"), "CN-1", "credit_note")
    ex = explain([*charges, note], "EUR")
    assert ex.sentence() == ("You owe 2.41 EUR: charges of 2.91 EUR from 1 Nov 2026 to 3 Nov 2026 "
                             "less credit note CN-1 of 4 Nov 2026 (0.50 EUR).")


def test_a_long_debt_folds_the_oldest_into_from_before() -> None:
    entries = [e for n in range(1, 11) for e in invoice(n, f"A-{n}", "10.00")]
    ex = explain(entries, "EUR", most=3)
    assert ex.balance == D("-100.00") and ex.before == D("-70.00") and len(ex.parts) == 3
    assert ex.sentence() == ("You owe 100.00 EUR: 70.00 EUR owed from before plus invoice A-8 of 8 Nov 2026 "
                             "(10.00 EUR) plus invoice A-9 of 9 Nov 2026 (10.00 EUR) plus invoice A-10 of "
                             "10 Nov 2026 (10.00 EUR).")


amounts = st.decimals(min_value=D("0.01"), max_value=D("500"), places=2)


@given(st.lists(st.tuples(st.booleans(), amounts), max_size=30), st.integers(1, 8))
def test_the_parts_and_from_before_add_up_to_the_balance(moves: list[tuple[bool, Decimal]], most: int) -> None:
    entries = [(paid(1 + i % 28, str(a), f"R-{i}") if credit else invoice(1 + i % 28, f"A-{i}", str(a))[0])
               for i, (credit, a) in enumerate(moves)]
    ex = explain(entries, "EUR", most=most)
    assert ex.balance == sum((e.credit - e.debit for e in entries), D(0))
    assert ex.before + sum((p.amount for p in ex.parts), D(0)) == ex.balance
    assert len(ex.parts) <= most
    if ex.state == "owed":
        assert ex.before <= 0 or ex.parts  # a credit from before only ever lessens a debt shown
