"""Matching a statement line to a customer from what was loaded (no database): each signal's
points, the threshold, ambiguity, names folded, errors, and what a file asks the store for."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.payments import matching, reference
from admin.payments.matching import Customer, Document, Known, LineIn

D = Decimal
ANNA = Customer(1, "C00001", "Anna Berger", "EUR")
KARL = Customer(2, "C00002", "Karl Huber", "EUR")
JUERGEN = Customer(3, "C00003", "Jürgen Müller", "EUR")
ZED = Customer(4, "C00004", "Zed Dollar", "USD")
INVOICE_K = Document(20, 2, "202601000020", "invoice", D("31.00"))
INVOICE_A = Document(10, 1, "202601000010", "invoice", D("31.00"))


def known(**extra: object) -> Known:
    k = Known(customers={c.id: c for c in (ANNA, KARL, JUERGEN, ZED)},
              documents={INVOICE_K.number: [INVOICE_K], INVOICE_A.number: [INVOICE_A]},
              open_invoices={1: [INVOICE_A], 2: [INVOICE_K]})
    for c in (ANNA, KARL, JUERGEN, ZED):
        k.by_words.setdefault(matching.name_words(c.name), []).append(c.id)
    for key, value in extra.items():
        setattr(k, key, value)
    return k


def signals(o: matching.Outcome) -> list[tuple[str, int]]:
    return [(s.signal, s.points) for s in o.explanation]


def test_a_valid_payment_reference_is_decisive() -> None:
    line = LineIn(D("5.00"), "EUR", "Someone Else", reference=reference.printed(reference.for_customer(1)))
    o = matching.decide(line, known())
    assert (o.status, o.customer_id, o.score, o.document_id) == ("matched", 1, 100, None)
    assert signals(o)[0] == ("reference", 100)


def test_a_reference_with_a_wrong_check_digit_names_nobody_and_says_so() -> None:
    good = reference.for_customer(1)
    typo = good[:2] + ("00" if good[2:4] != "00" else "01") + good[4:]
    o = matching.decide(LineIn(D("7.00"), "EUR", "", description=f"payment {typo}"), known())
    assert o.status == "new" and o.customer_id is None
    assert ("reference", 0) in signals(o) and "check digits are wrong" in o.explanation[0].detail


def test_an_invoice_number_and_its_open_amount_match_and_name_the_invoice() -> None:
    o = matching.decide(LineIn(D("31.00"), "EUR", "K. Huber", description=f"Rechnung INV-{INVOICE_K.number}"),
                        known())
    assert (o.status, o.customer_id, o.document_id) == ("matched", 2, 20)
    assert signals(o) == [("document", 60), ("name", 15), ("amount", 25)]


def test_an_invoice_number_with_another_amount_waits_for_a_person() -> None:
    o = matching.decide(LineIn(D("20.00"), "EUR", "", description=INVOICE_K.number), known())
    assert (o.status, o.customer_id, o.document_id, o.score) == ("new", 2, 20, 60)
    assert signals(o)[-1] == ("threshold", 0)


def test_the_whole_name_and_the_open_amount_match_folded() -> None:
    o = matching.decide(LineIn(D("31.00"), "EUR", "MUELLER, JUERGEN"), known(open_invoices={
        3: [Document(30, 3, "202601000030", "invoice", D("31.00"))]}))
    assert (o.status, o.customer_id, o.document_id, o.score) == ("matched", 3, 30, 70)
    assert matching.name_words("Jürgen Müller GmbH") == matching.name_words("JUERGEN MULLER") == \
        frozenset({"jurgen", "muller"})


def test_a_name_alone_or_part_of_one_does_not_match() -> None:
    assert matching.decide(LineIn(D("9.00"), "EUR", "Anna Berger"), known()).status == "new"
    o = matching.decide(LineIn(D("31.00"), "EUR", "Anna"), known())
    assert (o.status, o.customer_id) == ("new", None)  # part of a name names nobody


def test_a_name_many_customers_have_tells_nobody_apart() -> None:
    k = known()
    for i in range(10, 10 + matching.MAX_NAMESAKES + 1):
        k.customers[i] = Customer(i, f"C{i}", "Anna Berger", "EUR")
        k.by_words[matching.name_words("Anna Berger")].append(i)
    o = matching.decide(LineIn(D("31.00"), "EUR", "Anna Berger"), k)
    assert (o.status, o.customer_id) == ("new", None) and "tells nobody apart" in o.explanation[0].detail
    assert matching.named_by([LineIn(D("31.00"), "EUR", "Anna Berger")], k) == set()


def test_an_account_that_paid_for_a_customer_before_places_the_line() -> None:
    k = known(accounts={"DE44500105175407324931": {2: 3}})
    o = matching.decide(LineIn(D("31.00"), "EUR", "Mum", "DE44 5001 0517 5407 3249 31"), k)
    assert (o.status, o.customer_id) == ("matched", 2) and signals(o)[0] == ("account", 50)
    shared = known(accounts={"DE44500105175407324931": {1: 1, 2: 1}})
    o = matching.decide(LineIn(D("31.00"), "EUR", "", "DE44500105175407324931"), shared)
    assert o.status == "new" and "ambiguous" in [s.signal for s in o.explanation]


def test_two_customers_that_fit_as_well_are_for_a_person() -> None:
    text = f"{reference.for_customer(1)} and {reference.for_customer(2)}"
    o = matching.decide(LineIn(D("31.00"), "EUR", "", description=text), known())
    assert (o.status, o.customer_id) == ("new", None) and o.explanation[-1].signal == "ambiguous"


def test_a_matched_line_its_customer_cannot_take_is_an_error() -> None:
    o = matching.decide(LineIn(D("5.00"), "EUR", reference=reference.for_customer(4)), known())
    assert o.status == "error" and o.error == "the line is in EUR, customer C00004 is billed in USD"
    o = matching.decide(LineIn(D("5.001"), "EUR", reference=reference.for_customer(1)), known())
    assert o.status == "error" and "more decimals than EUR has (2)" in o.error
    gone = known()
    gone.customers[1] = Customer(1, "C00001", "Anna Berger", "EUR", "deleted")
    assert matching.decide(LineIn(D("5.00"), "EUR", reference=reference.for_customer(1)), gone).status == "new"


def test_money_out_and_nothing_are_ignored() -> None:
    assert matching.decide(LineIn(D("-3.00"), "EUR", reference=reference.for_customer(1)), known()).status == "ignored"
    assert matching.decide(LineIn(D("0"), "EUR"), known()).status == "ignored"


def test_paying_all_that_is_open_and_a_paid_invoice_named() -> None:
    k = known(open_invoices={1: [INVOICE_A, Document(11, 1, "202601000011", "invoice", D("9.00"))]})
    o = matching.decide(LineIn(D("40.00"), "EUR", "Anna Berger", description=reference.for_customer(1)), k)
    assert ("amount", 20) in signals(o) and o.document_id is None
    paid = known(documents={INVOICE_A.number: [Document(10, 1, INVOICE_A.number, "invoice", D("0"))]},
                 open_invoices={})
    o = matching.decide(LineIn(D("31.00"), "EUR", "", description=INVOICE_A.number), paid)
    assert "paid already" in o.explanation[0].detail and o.document_id is None


def test_what_a_file_asks_the_store_for() -> None:
    lines = [LineIn(D("1"), "EUR", "", "AT61 1904 3002 3457 3201", reference.for_customer(7), "INV-2026/0042"),
             LineIn(D("-1"), "EUR", "", "DE89370400440532013000", reference.for_customer(8))]
    w = matching.wanted(lines)
    assert w.customer_ids == {7} and w.accounts == {"AT611904300234573201"}  # money out asks for nothing
    assert {"INV-2026/0042", "2026", "0042"} <= w.numbers


@given(st.text(max_size=60))
def test_folding_is_idempotent_and_gives_ascii_words(name: str) -> None:
    words = matching.name_words(name)
    assert matching.name_words(" ".join(sorted(words))) == words
    assert all(len(w) >= 2 and w == matching.fold(w) and w not in matching.STOP for w in words)


@pytest.mark.parametrize(("a", "b"), [("Nováková", "NOVAKOVA"), ("Strauß", "STRAUSS"), ("Øystein", "oystein"),
                                      ("Müller", "Mueller"), ("Ærø", "aero"), ("Иван Петров", "ИВАН ПЕТРОВ")])
def test_names_fold_as_banks_write_them(a: str, b: str) -> None:
    assert matching.name_words(a) == matching.name_words(b)
