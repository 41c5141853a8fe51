"""admin.billing.taxes: per-line taxes, exclusive and inclusive, and totals that are the lines' sums.

Worked examples pin the rules to the cent (to the yen, to the fils); the properties check, for
random documents in EUR, JPY and KWD, that every line balances (net + taxes == gross), that the
totals are the sums of the lines, that every amount is a whole minor unit, and that the
proportional split adds up exactly. Exact references are written in fractions, not Decimals.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from admin.billing.money import MoneyError, digits, minor_unit, quantize
from admin.billing.taxes import (
    DocumentLine,
    LineAmounts,
    TaxError,
    TaxGroup,
    TaxRate,
    document_totals,
    price_document,
    price_line,
    split_proportionally,
)

D = Decimal
VAT20 = TaxRate("VAT 20 %", D("20"))
VAT10 = TaxRate("VAT 10 %", D("10"))
ZERO_RATED = TaxRate("VAT 0 %", D("0"))
GST = TaxRate("GST", D("5"))
QST = TaxRate("QST", D("9.975"))
KW5 = TaxRate("Tax 5 %", D("5"))
VAT = TaxGroup("VAT 20 %", (VAT20,))
QUEBEC = TaxGroup("GST + QST", (GST, QST))
ALBERTA = TaxGroup("GST", (GST,))
EXEMPT = TaxGroup("exempt")


def line(quantity: str, price: str, group: TaxGroup, *, inclusive: bool = False, currency: str = "EUR") -> DocumentLine:
    return DocumentLine("item", D(quantity), D(price), group, inclusive, currency)


def amounts(priced: LineAmounts) -> tuple[str, list[tuple[str, str]], str]:
    """net, [(rate, tax)], gross as text: the exponent counts too ("5.00", not "5")."""
    return str(priced.net), [(t.rate.name, str(t.amount)) for t in priced.taxes], str(priced.gross)


# --- worked examples ------------------------------------------------------------------------------


def test_exclusive_three_times_9_99_at_20_percent() -> None:
    # net 29.97; 20 % of it is 5.994 -> 5.99
    assert amounts(price_line(line("3", "9.99", VAT))) == ("29.97", [("VAT 20 %", "5.99")], "35.96")


def test_exclusive_tax_is_on_the_rounded_net() -> None:
    # 7 minutes at 0.0166 = 0.1162 -> net 0.12; 30 % of 0.12 = 0.036 -> 0.04 (of 0.1162 it would be 0.03)
    thirty = TaxGroup("30 %", (TaxRate("30 %", D("30")),))
    assert amounts(price_line(line("7", "0.0166", thirty))) == ("0.12", [("30 %", "0.04")], "0.16")


def test_inclusive_40_at_20_percent() -> None:
    # tax = 40.00 * 20 / 120 = 6.666... -> 6.67; net = 40.00 - 6.67 (33.333... exactly)
    priced = price_line(line("1", "40.00", VAT, inclusive=True))
    assert amounts(priced) == ("33.33", [("VAT 20 %", "6.67")], "40.00")
    assert priced.tax == D("6.67")
    assert priced.taxes[0].base == D("33.33")


def test_quebec_gst_and_qst_in_parallel_on_100() -> None:
    # each on the net: 5 % = 5.00, 9.975 % = 9.975, a tie, -> 9.98 (half up)
    priced = price_line(line("1", "100.00", QUEBEC))
    assert amounts(priced) == ("100.00", [("GST", "5.00"), ("QST", "9.98")], "114.98")
    assert [t.base for t in priced.taxes] == [D("100.00"), D("100.00")]


def test_quebec_inclusive_gives_back_the_net() -> None:
    # 114.98 * 5 / 114.975 = 5.0002... -> 5.00; 114.98 * 9.975 / 114.975 = 9.9754... -> 9.98
    priced = price_line(line("1", "114.98", QUEBEC, inclusive=True))
    assert amounts(priced) == ("100.00", [("GST", "5.00"), ("QST", "9.98")], "114.98")


def test_zero_rated_and_exempt() -> None:
    zero = TaxGroup("zero-rated", (ZERO_RATED,))
    assert amounts(price_line(line("2", "12.50", zero))) == ("25.00", [("VAT 0 %", "0.00")], "25.00")
    assert amounts(price_line(line("2", "12.50", zero, inclusive=True))) == ("25.00", [("VAT 0 %", "0.00")], "25.00")
    assert amounts(price_line(line("2", "12.50", EXEMPT))) == ("25.00", [], "25.00")
    assert amounts(price_line(line("2", "12.50", EXEMPT, inclusive=True))) == ("25.00", [], "25.00")


def test_jpy_has_no_decimals() -> None:
    ten = TaxGroup("10 %", (VAT10,))
    # 999 * 10 % = 99.9 -> 100
    assert amounts(price_line(line("3", "333", ten, currency="JPY"))) == ("999", [("VAT 10 %", "100")], "1099")
    # 1.5 * 333 = 499.5 -> 500 (half up), 10 % = 50
    assert amounts(price_line(line("1.5", "333", ten, currency="JPY"))) == ("500", [("VAT 10 %", "50")], "550")
    # 1000 * 10 / 110 = 90.909... -> 91
    assert amounts(price_line(line("1", "1000", ten, inclusive=True, currency="JPY"))) == (
        "909", [("VAT 10 %", "91")], "1000")


def test_kwd_has_three_decimals() -> None:
    five = TaxGroup("5 %", (KW5,))
    # 2.5 * 1.2345 = 3.08625 -> 3.086; 5 % = 0.1543 -> 0.154
    assert amounts(price_line(line("2.5", "1.2345", five, currency="KWD"))) == (
        "3.086", [("Tax 5 %", "0.154")], "3.240")
    # 5 % of 0.010 is 0.0005, a tie at the fils -> 0.001
    assert amounts(price_line(line("1", "0.010", five, currency="KWD"))) == ("0.010", [("Tax 5 %", "0.001")], "0.011")
    # 10.000 * 5 / 105 = 0.476190... -> 0.476
    assert amounts(price_line(line("1", "10", five, inclusive=True, currency="KWD"))) == (
        "9.524", [("Tax 5 %", "0.476")], "10.000")


def test_totals_are_the_sums_of_the_rounded_lines() -> None:
    # each line's 10 % of 0.05 is 0.005 -> 0.01; the document's tax is 0.03, not round(0.015) = 0.02
    ten = TaxGroup("10 %", (VAT10,))
    priced, totals = price_document([line("1", "0.05", ten)] * 3, "EUR")
    assert [p.taxes[0].amount for p in priced] == [D("0.01")] * 3
    assert (str(totals.net), str(totals.tax), str(totals.gross)) == ("0.15", "0.03", "0.18")
    assert [(t.rate, str(t.base), str(t.amount)) for t in totals.taxes] == [(VAT10, "0.15", "0.03")]


def test_totals_per_rate_across_groups_sharing_a_rate() -> None:
    priced, totals = price_document(
        [line("1", "100.00", QUEBEC), line("2", "25.00", ALBERTA), line("1", "10.00", EXEMPT)], "EUR")
    assert [p.gross for p in priced] == [D("114.98"), D("52.50"), D("10.00")]
    assert str(totals.net) == "160.00"
    # GST is paid by the first two lines (base 150.00), QST by the first alone; in order of first use
    assert [(t.rate, str(t.base), str(t.amount)) for t in totals.taxes] == [
        (GST, "150.00", "7.50"), (QST, "100.00", "9.98")]
    assert (str(totals.tax), str(totals.gross)) == ("17.48", "177.48")


def test_an_empty_document_totals_zero_in_its_currency() -> None:
    assert price_document([], "KWD")[1].net.as_tuple().exponent == -3
    totals = document_totals([], "EUR")
    assert (str(totals.net), totals.taxes, str(totals.gross)) == ("0.00", (), "0.00")


def test_a_line_in_another_currency_is_refused() -> None:
    with pytest.raises(TaxError, match="JPY line on a EUR document"):
        price_document([line("1", "1.00", VAT), line("1", "100", VAT, currency="JPY")], "EUR")


def test_a_negative_line_mirrors_its_positive() -> None:
    priced = price_line(line("-1", "40.00", VAT, inclusive=True))
    assert amounts(priced) == ("-33.33", [("VAT 20 %", "-6.67")], "-40.00")


def test_a_zero_is_never_negative() -> None:
    priced = price_line(line("-1", "0.004", TaxGroup("zero", (ZERO_RATED,))))
    assert amounts(priced) == ("0.00", [("VAT 0 %", "0.00")], "0.00")


def test_results_do_not_depend_on_the_callers_decimal_context() -> None:
    with localcontext(prec=6):
        priced = price_line(line("123.457", "9876.5432", QUEBEC))
    assert priced == price_line(line("123.457", "9876.5432", QUEBEC))
    assert priced.net == D("1219328.39")  # 1219328.3938424: 14 digits


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TaxRate("VAT", 20.0), "must be a Decimal"),  # type: ignore[arg-type]
        (lambda: TaxRate("VAT", D("NaN")), "not a number"),
        (lambda: TaxRate("VAT", D("-1")), "cannot be negative"),
        (lambda: TaxRate("", D("20")), "needs a name"),
        (lambda: TaxGroup("twice", (VAT20, TaxRate("VAT 20 %", D("20.0")))), "appears twice"),
        (lambda: DocumentLine("x", 3.0, D("1"), VAT, False, "EUR"), "must be a Decimal"),  # type: ignore[arg-type]
        (lambda: DocumentLine("x", D("1"), D("Infinity"), VAT, False, "EUR"), "not a number"),
        (lambda: DocumentLine("x", D("1"), D("1"), VAT, False, "eur"), "not an ISO 4217"),
    ],
)
def test_what_is_refused(build: object, message: str) -> None:
    with pytest.raises(MoneyError, match=message):
        build()  # type: ignore[operator]


def test_split_examples() -> None:
    assert split_proportionally(D("100.00"), [D(1)] * 3, "EUR") == (D("33.34"), D("33.33"), D("33.33"))
    assert split_proportionally(D("0.05"), [D(1)] * 6, "EUR") == (D("0.01"),) * 5 + (D("0.00"),)
    # 10.00 over lines of 35.96 and 40.00: exact shares 4.734... and 5.265...
    assert split_proportionally(D("10.00"), [D("35.96"), D("40.00")], "EUR") == (D("4.73"), D("5.27"))
    assert split_proportionally(D("1000"), [D(1), D(2)], "JPY") == (D("333"), D("667"))
    assert split_proportionally(D("1.000"), [D(0), D(3)], "KWD") == (D("0.000"), D("1.000"))
    assert [str(p) for p in split_proportionally(D("-1.00"), [D(1)] * 3, "EUR")] == ["-0.33", "-0.33", "-0.34"]


@pytest.mark.parametrize(
    ("amount", "weights", "message"),
    [
        (D("10.005"), [D(1)], "whole number of EUR minor units"),
        (D("10.00"), [], "nothing to split"),
        (D("10.00"), [D(1), D(-1)], "add up to zero"),
        (D("10.00"), [D(0)], "add up to zero"),
        (D("10.00"), [D("NaN")], "not a number"),
        (D("10.00"), [1.0], "must be a Decimal"),
    ],
)
def test_split_refuses(amount: Decimal, weights: list[Decimal], message: str) -> None:
    with pytest.raises(TaxError, match=message):
        split_proportionally(amount, weights, "EUR")


# --- properties -----------------------------------------------------------------------------------


def decimals(low: int, high: int, places: int) -> st.SearchStrategy[Decimal]:
    """Decimals in [low, high] with up to ``places`` decimals."""
    return st.integers(0, places).flatmap(lambda p: st.decimals(min_value=low, max_value=high, places=p))


CURRENCIES = st.sampled_from(["EUR", "JPY", "KWD"])
RATES = st.builds(TaxRate, st.sampled_from(["A", "B", "C", "D", "E"]), decimals(0, 30, 3))


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, list[DocumentLine]]:
    """A currency and lines in it whose groups draw on one pool of rates, so that lines share rates."""
    currency = draw(CURRENCIES)
    pool = draw(st.lists(RATES, max_size=5, unique_by=lambda rate: rate.name))
    subsets = st.lists(st.sampled_from(pool), unique=True, max_size=3) if pool else st.just([])
    lines = draw(st.lists(
        st.builds(
            DocumentLine,
            st.just("item"),
            decimals(1, 1000, 3),
            decimals(0, 10000, 4),
            subsets.map(lambda rates: TaxGroup("group", tuple(rates))),
            st.booleans(),
            st.just(currency),
        ),
        max_size=12,
    ))
    return currency, lines


def whole_minor_units(amount: Decimal, currency: str) -> bool:
    return amount.as_tuple().exponent == -digits(currency) and quantize(amount, currency) == amount


@given(documents())
def test_every_line_balances_in_whole_minor_units(document: tuple[str, list[DocumentLine]]) -> None:
    currency, lines = document
    half = Fraction(minor_unit(currency)) / 2
    for priced in price_document(lines, currency)[0]:
        source = priced.line
        assert priced.net + sum(t.amount for t in priced.taxes) == priced.gross
        every = (priced.net, priced.gross, *(t.amount for t in priced.taxes))
        assert all(whole_minor_units(a, currency) for a in every)
        assert [t.rate for t in priced.taxes] == list(source.tax_group.rates)
        assert all(t.base == priced.net for t in priced.taxes)
        rounded = quantize(source.quantity * source.unit_price, currency)
        if source.inclusive:
            assert priced.gross == rounded
            divisor = 100 + sum((Fraction(r.percent) for r in source.tax_group.rates), Fraction(0))
            for tax in priced.taxes:
                assert abs(Fraction(tax.amount) - Fraction(priced.gross) * Fraction(tax.rate.percent) / divisor) <= half
            # the net is within half a minor unit per rate of the exact net in the gross
            exact_net = Fraction(priced.gross) * 100 / divisor
            assert abs(Fraction(priced.net) - exact_net) <= half * len(priced.taxes)
        else:
            assert priced.net == rounded
            for tax in priced.taxes:
                assert abs(Fraction(tax.amount) - Fraction(priced.net) * Fraction(tax.rate.percent) / 100) <= half


@given(documents())
def test_totals_are_exactly_the_sums_of_the_lines(document: tuple[str, list[DocumentLine]]) -> None:
    currency, lines = document
    priced, totals = price_document(lines, currency)
    assert totals.currency == currency
    assert totals.net == sum((p.net for p in priced), D(0))
    assert totals.gross == sum((p.gross for p in priced), D(0))
    assert totals.net + sum(t.amount for t in totals.taxes) == totals.gross
    used = list(dict.fromkeys(t.rate for p in priced for t in p.taxes))
    assert [t.rate for t in totals.taxes] == used
    for total in totals.taxes:
        paying = [t for p in priced for t in p.taxes if t.rate == total.rate]
        assert total.amount == sum((t.amount for t in paying), D(0))
        assert total.base == sum((t.base for t in paying), D(0))
    assert all(whole_minor_units(a, currency) for a in (
        totals.net, totals.gross, *(t.amount for t in totals.taxes), *(t.base for t in totals.taxes)))


@given(documents())
def test_negating_the_quantities_negates_every_amount(document: tuple[str, list[DocumentLine]]) -> None:
    currency, lines = document
    negated = [DocumentLine(li.description, -li.quantity, li.unit_price, li.tax_group, li.inclusive, currency)
               for li in lines]
    _, totals = price_document(lines, currency)
    _, mirror = price_document(negated, currency)
    assert (mirror.net, mirror.gross) == (-totals.net, -totals.gross)
    assert [(t.rate, t.base, t.amount) for t in mirror.taxes] == [(t.rate, -t.base, -t.amount) for t in totals.taxes]


WEIGHTS = st.lists(decimals(-10000, 10000, 4), min_size=1, max_size=20)


@given(CURRENCIES, st.integers(-10**9, 10**9), WEIGHTS)
def test_the_split_adds_up_and_each_part_is_within_a_minor_unit(currency: str, units: int,
                                                               weights: list[Decimal]) -> None:
    assume(sum(weights) != 0)
    unit = minor_unit(currency)
    amount = quantize(units * unit, currency)
    parts = split_proportionally(amount, weights, currency)
    assert len(parts) == len(weights)
    assert sum(parts) == amount
    assert all(whole_minor_units(p, currency) for p in parts)
    total_weight = sum((Fraction(w) for w in weights), Fraction(0))
    for part, weight in zip(parts, weights, strict=True):
        assert abs(Fraction(part) - Fraction(amount) * Fraction(weight) / total_weight) < Fraction(unit)


@given(documents())
def test_splitting_a_whole_invoice_by_its_lines_gives_back_the_lines(document: tuple[str, list[DocumentLine]]) -> None:
    currency, lines = document
    priced, totals = price_document(lines, currency)
    assume(totals.gross != 0)
    grosses = [p.gross for p in priced]
    assert split_proportionally(totals.gross, grosses, currency) == tuple(grosses)
