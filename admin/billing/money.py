"""Money: Decimal amounts, rounded by the one rule of their currency, and formatted for people.

Amounts are ``Decimal`` everywhere (``numeric(14,4)`` in PostgreSQL), never float. Rounding to
the currency's minor unit is done here only, half up (the commercial rule: 0.125 -> 0.13), with
the currency's number of decimals from the ISO 4217 data Babel carries (EUR 2, JPY 0, KWD 3).
"""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import format_currency, get_currency_precision, list_currencies

ZERO = Decimal("0")
_CODES = frozenset(list_currencies())


class MoneyError(ValueError):
    pass


@functools.cache
def digits(currency: str) -> int:
    """Decimals of ``currency``'s minor unit (EUR 2, JPY 0, KWD 3)."""
    if currency not in _CODES:
        raise MoneyError(f"{currency!r} is not an ISO 4217 currency code")
    return int(get_currency_precision(currency))


@functools.cache
def _unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-digits(currency))


def quantize(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half up to ``currency``'s minor unit."""
    if not isinstance(amount, Decimal):
        raise MoneyError(f"money must be a Decimal, not {type(amount).__name__}")
    if not amount.is_finite():
        raise MoneyError(f"{amount} is not an amount")
    return amount.quantize(_unit(currency), rounding=ROUND_HALF_UP)


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of ``currency`` (0.01 for EUR)."""
    return _unit(currency)


def format_money(amount: Decimal, currency: str, locale: str = "en") -> str:
    """``amount`` as people of ``locale`` write it: "€1,234.50" (en), "€ 1.234,50" (de_AT)."""
    return str(format_currency(quantize(amount, currency), currency, locale=locale))
