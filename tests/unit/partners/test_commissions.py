"""Percentage mode's rule (admin/partners/commissions.py), worked to the cent: the split of a paid
amount over an invoice's lines net of tax, the rate chosen per line, releases, the mode on a day."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.partners import commissions as rule

D = Decimal
TEN = rule.Rates(D(10))
VAT_INVOICE = [rule.Line(1, D("100.00"), D("120.00"), "service", 7)]


def test_an_invoice_paid_in_two_parts_earns_its_whole_commission() -> None:
    first = rule.earn_document(D("50.00"), D("120.00"), VAT_INVOICE, TEN, "EUR")
    second = rule.earn_document(D("70.00"), D("120.00"), VAT_INVOICE, TEN, "EUR")
    assert (first.base, first.amount) == (D("41.6667"), D("4.17"))
    assert (second.base, second.amount) == (D("58.3333"), D("5.83"))
    assert first.amount + second.amount == D("10.00")
    assert first.detail == [{"position": 1, "category": "service", "tariff_id": 7, "base": "41.6667",
                             "percent": "10"}]


def test_a_tariff_rate_and_a_fee_rate_each_apply_to_their_line() -> None:
    rates = rule.Rates(D(10), tariffs={7: D(15)}, categories={"fee": D(5)})
    lines = [rule.Line(1, D("100.00"), D("120.00"), "service", 7), rule.Line(2, D("10.00"), D("12.00"), "fee")]
    paid = rule.earn_document(D("132.00"), D("132.00"), lines, rates, "EUR")
    assert paid.base == D("110.0000")
    assert paid.amount == D("15.50")  # 100 x 15 % + 10 x 5 %
    assert [(p["category"], p["percent"]) for p in paid.detail] == [("service", "15"), ("fee", "5")]
    half = rule.earn_document(D("66.00"), D("132.00"), lines, rates, "EUR")
    assert half.amount == D("7.75")


def test_the_rate_choice_is_the_tariffs_before_the_categorys_before_the_partners() -> None:
    rates = rule.Rates(D(10), tariffs={7: D(15)}, categories={"service": D(12), "one_time": D(3)})
    assert rates.rate("service", 7) == D(15)
    assert rates.rate("service", 8) == D(12)
    assert rates.rate("one_time") == D(3)
    assert rates.rate("fee") == D(10)
    with pytest.raises(rule.CommissionError):
        rates.rate("tip")


def test_categories_of_lines() -> None:
    assert rule.category_of("fee", 3) == "fee"
    assert rule.category_of("charge", 3) == "service"
    assert rule.category_of("charge", 3, one_time=True) == "one_time"
    assert rule.category_of("charge", None) == "one_time"
    assert rule.category_of(None, None) == "one_time"


def test_a_prepaid_debit_is_its_whole_amount() -> None:
    earned = rule.earn_debit(D("30.00"), "service", 7, rule.Rates(D(10), tariffs={7: D(20)}), "EUR")
    assert (earned.base, earned.amount) == (D("30.0000"), D("6.00"))


def test_a_refund_earns_the_negation_and_a_part_release_pro_rata() -> None:
    second = rule.earn_document(D("70.00"), D("120.00"), VAT_INVOICE, TEN, "EUR")
    back = rule.release(second, D("70.00"), D("-70.00"), "EUR")
    assert (back.base, back.amount) == (D("-58.3333"), D("-5.83"))
    assert back.detail[0]["base"] == "-58.3333"
    part = rule.release(second, D("70.00"), D("-35.00"), "EUR")
    assert part.amount == D("-2.92")  # -5.83 / 2 = -2.915, half up away from zero
    with pytest.raises(rule.CommissionError):
        rule.release(second, D("70.00"), D("5.00"), "EUR")


def test_rounding_follows_the_currency() -> None:
    jpy = rule.earn_document(D("1000"), D("1100"), [rule.Line(1, D("1000"), D("1100"), "service")],
                             rule.Rates(D("7.5")), "JPY")
    assert jpy.amount == D("68")  # 909.0909 x 7.5 % = 68.18
    kwd = rule.earn_debit(D("1.234"), "fee", None, rule.Rates(D(10)), "KWD")
    assert kwd.amount == D("0.123")


def test_nothing_paid_or_a_zero_document_earns_nothing() -> None:
    assert rule.earn_document(D("0"), D("120.00"), VAT_INVOICE, TEN, "EUR").amount == D("0.00")
    assert rule.earn_document(D("5"), D("0"), VAT_INVOICE, TEN, "EUR").detail == []


def test_the_mode_on_a_day() -> None:
    modes = [(dt.date(2026, 3, 1), "percentage"), (dt.date(2026, 1, 1), "aggregated")]
    assert rule.mode_on([], dt.date(2026, 5, 1)) == "direct"
    assert rule.mode_on(modes, dt.date(2025, 12, 31)) == "direct"
    assert rule.mode_on(modes, dt.date(2026, 2, 28)) == "aggregated"
    assert rule.mode_on(modes, dt.date(2026, 3, 1)) == "percentage"


def test_months_and_numbers() -> None:
    assert rule.parse_month("2026-02") == dt.date(2026, 2, 1)
    assert rule.next_month(dt.date(2026, 12, 1)) == dt.date(2027, 1, 1)
    assert rule.month_of(dt.date(2026, 2, 17)) == dt.date(2026, 2, 1)
    for bad in ("2026-2", "26-02", "2026/02", "2026-13", ""):
        with pytest.raises(ValueError):
            rule.parse_month(bad)
    assert rule.statement_number(4, dt.date(2026, 2, 1)) == "CS-4-2026-02"
    assert rule.statement_number(4, dt.date(2026, 2, 1), "USD") == "CS-4-2026-02-USD"


@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=6), st.integers(0, 100))
def test_a_document_paid_whole_in_one_part_earns_its_rate_of_its_net(nets: list[int], percent: int) -> None:
    lines = [rule.Line(i, D(n) / 100, D(n) * 120 / 10_000, "service") for i, n in enumerate(nets, start=1)]
    total = sum((line.gross for line in lines), D(0))
    earned = rule.earn_document(total, total, lines, rule.Rates(D(percent)), "EUR")
    net = sum((line.net for line in lines), D(0))
    assert abs(earned.amount - net * percent / 100) <= D("0.01")
    back = rule.release(earned, total, -total, "EUR")
    assert back.amount == -earned.amount and back.base == -earned.base
