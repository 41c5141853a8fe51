"""admin.billing.money: half-up rounding to each currency's minor unit, Decimal only, Babel formats.

The rounding is checked against worked ties (where half up and Python's default half-even part
ways) and, for random amounts, against a reference written in exact fractions.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.billing.money import MoneyError, digits, format_money, minor_unit, quantize

CURRENCIES = ["EUR", "JPY", "KWD"]


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        # EUR, 2 decimals: a tie goes up (half-even would give 0.12)
        ("0.125", "EUR", "0.13"),
        ("0.1249999", "EUR", "0.12"),
        ("0.135", "EUR", "0.14"),
        ("2.675", "EUR", "2.68"),
        ("-0.125", "EUR", "-0.13"),  # away from zero: a credit mirrors its charge
        ("7", "EUR", "7.00"),
        ("19.999", "EUR", "20.00"),
        # JPY, no decimals
        ("2.5", "JPY", "3"),  # half-even: 2
        ("0.5", "JPY", "1"),
        ("1.4999", "JPY", "1"),
        ("-2.5", "JPY", "-3"),
        ("7.00", "JPY", "7"),
        ("1234.5", "JPY", "1235"),
        # KWD, 3 decimals
        ("1.2345", "KWD", "1.235"),
        ("1.2344", "KWD", "1.234"),
        ("0.0005", "KWD", "0.001"),
        ("0.0004999", "KWD", "0.000"),
        ("7", "KWD", "7.000"),
    ],
)
def test_quantize_rounds_half_up_to_the_minor_unit(amount: str, currency: str, expected: str) -> None:
    assert str(quantize(Decimal(amount), currency)) == expected  # the value and its exponent


def test_digits_and_minor_units_from_iso_4217() -> None:
    assert [digits(c) for c in CURRENCIES] == [2, 0, 3]
    assert str(minor_unit("EUR")) == "0.01"
    assert str(minor_unit("JPY")) == "1"
    assert str(minor_unit("KWD")) == "0.001"


@pytest.mark.parametrize("code", ["eur", "EURO", "EU", "E1R", "", "€"])
def test_what_is_not_a_currency_code_is_refused(code: str) -> None:
    with pytest.raises(MoneyError):
        digits(code)
    with pytest.raises(MoneyError):
        quantize(Decimal("1.00"), code)


@pytest.mark.parametrize("amount", [0.1, 1.005, 3, "1.00", None])
def test_quantize_refuses_anything_but_a_decimal(amount: object) -> None:
    with pytest.raises(MoneyError, match="must be a Decimal"):
        quantize(amount, "EUR")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["NaN", "-NaN", "sNaN", "Infinity", "-Infinity"])
def test_quantize_refuses_what_is_not_finite(text: str) -> None:
    with pytest.raises(MoneyError, match="is not an amount"):
        quantize(Decimal(text), "EUR")
    with pytest.raises(MoneyError):
        format_money(Decimal(text), "EUR")


def test_format_money_refuses_a_float() -> None:
    with pytest.raises(MoneyError):
        format_money(1234.5, "EUR")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        ("1234.5", "EUR", "en", "€1,234.50"),
        ("1234.5", "EUR", "de_AT", "€\xa01.234,50"),  # CLDR de_AT: the sign first, a no-break space
        ("0.125", "EUR", "en", "€0.13"),  # rounded half up here, not half-even by Babel
        ("0.125", "EUR", "de_AT", "€\xa00,13"),
        ("-1234.565", "EUR", "en", "-€1,234.57"),
        ("-1234.565", "EUR", "de_AT", "-€\xa01.234,57"),
        ("1234.5", "JPY", "en", "¥1,235"),
        ("1234.5", "JPY", "de_AT", "¥\xa01.235"),
        ("1234.5", "KWD", "en", "KWD1,234.500"),
        ("1234.5", "KWD", "de_AT", "KWD\xa01.234,500"),
        ("0", "EUR", "en", "€0.00"),
    ],
)
def test_format_money_in_en_and_de_at(amount: str, currency: str, locale: str, expected: str) -> None:
    assert format_money(Decimal(amount), currency, locale) == expected


def test_format_money_defaults_to_english() -> None:
    assert format_money(Decimal("1234.5"), "EUR") == "€1,234.50"


def _half_up(amount: Decimal, currency: str) -> Fraction:
    """The reference: |amount| in minor units plus one half, rounded down, with amount's sign."""
    units = Fraction(amount) / Fraction(minor_unit(currency))
    magnitude = math.floor(abs(units) + Fraction(1, 2))
    return Fraction(magnitude if units >= 0 else -magnitude) * Fraction(minor_unit(currency))


AMOUNTS = st.integers(0, 6).flatmap(
    lambda places: st.decimals(min_value=-10**9, max_value=10**9, places=places)
)


@given(AMOUNTS, st.sampled_from(CURRENCIES))
def test_quantize_agrees_with_exact_half_up(amount: Decimal, currency: str) -> None:
    rounded = quantize(amount, currency)
    assert Fraction(rounded) == _half_up(amount, currency)
    assert rounded.as_tuple().exponent == -digits(currency)
    assert abs(rounded - amount) <= minor_unit(currency) / 2
    assert quantize(rounded, currency) == rounded
    assert quantize(-amount, currency) == -rounded


@given(st.integers(-10**9, 10**9), st.sampled_from(CURRENCIES))
def test_an_exact_half_always_goes_away_from_zero(units: int, currency: str) -> None:
    unit = minor_unit(currency)
    tie = (Decimal(units) + Decimal("0.5")) * unit
    expected = (Decimal(units) + (1 if tie > 0 else 0)) * unit
    assert quantize(tie, currency) == expected
