"""Taxes on document lines: rates, groups, per-line amounts and document totals that add up exactly.

A :class:`TaxRate` is a name and a percent (``Decimal("20")``, ``Decimal("7.7")``). A
:class:`TaxGroup` is the set of rates one line pays together: one VAT rate, none (exempt or out of
scope), or several **parallel** rates, each levied on the same net (Quebec: GST 5 % + QST 9.975 %).
Compound taxes (a tax on the net plus another tax) are not supported: no rate here is ever levied
on another rate's amount.

A price is either net (tax-exclusive) or gross (tax-inclusive), as its tariff says
(``DocumentLine.inclusive``). The rounding rules, all through :func:`admin.billing.money.quantize`
(half up to the currency's minor unit), are:

- **Round per line.** The line amount ``quantity * unit_price`` is rounded once. For an exclusive
  price it is the line's net, each rate's tax is ``quantize(net * percent / 100)`` and the gross is
  ``net + sum(taxes)``. For an inclusive price it is the line's gross, each rate's tax is
  ``quantize(gross * percent / (100 + sum of the group's percents))`` and the net is
  ``gross - sum(taxes)``: the gross the customer was quoted stays what it was, and
  ``net + sum(taxes) == gross`` to the minor unit on every line, exclusive or inclusive.
- **Totals are sums of the rounded lines**, never re-rounded: the document's net, its tax per rate
  (with the taxable base per rate, which an EU invoice must show) and its gross are the sums of the
  lines' amounts, so that every total on a document can be checked by adding up its lines.

Rounding per line (rather than once on the totals) is what makes both hold at once: a total
computed from unrounded lines and rounded at the end can differ from the sum of the printed lines
by a minor unit per line. The price of it is the usual one of inclusive prices: an inclusive line's
tax may differ by a minor unit from ``quantize(net * percent / 100)`` of its own net.

:func:`split_proportionally` cuts one amount into parts proportional to weights by the largest
remainder, so that the parts add up exactly (a credit note for part of an invoice, spread over the
invoice's lines by their gross).

Quantities and prices may be negative (a discount line, a credit); rounding half up is away from
zero, so negating a line's quantity negates every amount of it. The arithmetic runs in private
decimal contexts (60 digits; products and sums must be exact, or raise), whatever context the
caller has set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow, localcontext
from fractions import Fraction

from admin.billing import money

__all__ = [
    "DocumentLine",
    "DocumentTotals",
    "LineAmounts",
    "TaxAmount",
    "TaxError",
    "TaxGroup",
    "TaxRate",
    "document_totals",
    "price_document",
    "price_line",
    "split_proportionally",
]

HUNDRED = Decimal(100)

# Products and sums must be exact (trapped if not); quotients are carried to 60 digits, far more
# than any half-up decision at a minor unit needs, then rounded by money.quantize alone.
_EXACT = Context(prec=60, traps=[Inexact, InvalidOperation, Overflow])
_QUOTIENT = Context(prec=60, traps=[InvalidOperation, Overflow])


class TaxError(money.MoneyError):
    pass


def _decimal(value: object, what: str) -> Decimal:
    if not isinstance(value, Decimal):
        raise TaxError(f"{what} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise TaxError(f"{what} {value} is not a number")
    return value


@dataclass(frozen=True, slots=True)
class TaxRate:
    """A tax levied as ``percent`` % of a net amount; equal when name and percent are."""

    name: str
    percent: Decimal

    def __post_init__(self) -> None:
        if not self.name:
            raise TaxError("a tax rate needs a name")
        if _decimal(self.percent, f"the percent of {self.name}") < 0:
            raise TaxError(f"{self.name}: a tax rate cannot be negative ({self.percent} %)")


@dataclass(frozen=True, slots=True)
class TaxGroup:
    """The rates a line pays together, each on the line's net (parallel, never compound).

    No rates at all is a valid group: a line outside the scope of tax, or exempt."""

    name: str
    rates: tuple[TaxRate, ...] = ()

    def __post_init__(self) -> None:
        if len(set(self.rates)) != len(self.rates):
            raise TaxError(f"tax group {self.name}: a rate appears twice")

    @property
    def percent(self) -> Decimal:
        """The sum of the group's percents: the tax on a net, in percent of it."""
        total = Decimal(0)
        for rate in self.rates:
            total = _EXACT.add(total, rate.percent)
        return total


@dataclass(frozen=True, slots=True)
class DocumentLine:
    """What a document line is priced from. ``unit_price`` is net if not ``inclusive``, else gross."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    tax_group: TaxGroup
    inclusive: bool
    currency: str

    def __post_init__(self) -> None:
        _decimal(self.quantity, "a quantity")
        _decimal(self.unit_price, "a unit price")
        money.digits(self.currency)  # refuses what is not a currency code


@dataclass(frozen=True, slots=True)
class TaxAmount:
    """One rate's tax: ``amount`` levied on the taxable ``base`` (the net it was computed on)."""

    rate: TaxRate
    base: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class LineAmounts:
    """A priced line: ``net + sum(t.amount for t in taxes) == gross``, each a whole minor unit.

    ``taxes`` has one entry per rate of the line's group, in the group's order."""

    line: DocumentLine
    net: Decimal
    taxes: tuple[TaxAmount, ...]
    gross: Decimal

    @property
    def tax(self) -> Decimal:
        return self.gross - self.net


@dataclass(frozen=True, slots=True)
class DocumentTotals:
    """The sums of a document's priced lines. ``taxes`` has one entry per rate used by any line, in
    the order of first use; its ``base`` is the sum of the nets of the lines that pay the rate."""

    currency: str
    net: Decimal
    taxes: tuple[TaxAmount, ...]
    gross: Decimal

    @property
    def tax(self) -> Decimal:
        return self.gross - self.net


def _round(amount: Decimal, currency: str) -> Decimal:
    """money.quantize, with a zero always positive (never "-0.00" on a document)."""
    with localcontext(_QUOTIENT):  # quantize fails if the caller's precision is too small for the result
        rounded = money.quantize(amount, currency)
    return rounded.copy_abs() if rounded.is_zero() else rounded


def _sum(amounts: Iterable[Decimal], currency: str) -> Decimal:
    total = _round(Decimal(0), currency)
    for amount in amounts:
        total = _EXACT.add(total, amount)
    return _round(total, currency)  # exact already: only a zero's sign can change


def _taxes_on_net(net: Decimal, group: TaxGroup, currency: str) -> tuple[TaxAmount, ...]:
    return tuple(
        TaxAmount(rate, net, _round(_QUOTIENT.divide(_EXACT.multiply(net, rate.percent), HUNDRED), currency))
        for rate in group.rates
    )


def _taxes_in_gross(gross: Decimal, group: TaxGroup, currency: str) -> tuple[Decimal, tuple[TaxAmount, ...]]:
    divisor = _EXACT.add(HUNDRED, group.percent)
    amounts = [
        _round(_QUOTIENT.divide(_EXACT.multiply(gross, rate.percent), divisor), currency) for rate in group.rates
    ]
    net = _round(_EXACT.subtract(gross, _sum(amounts, currency)), currency)
    return net, tuple(TaxAmount(rate, net, amount) for rate, amount in zip(group.rates, amounts, strict=True))


def price_line(line: DocumentLine) -> LineAmounts:
    """The line's net, tax per rate and gross, by the rules of the module docstring."""
    amount = _round(_EXACT.multiply(line.quantity, line.unit_price), line.currency)
    if line.inclusive:
        net, taxes = _taxes_in_gross(amount, line.tax_group, line.currency)
        return LineAmounts(line, net, taxes, amount)
    taxes = _taxes_on_net(amount, line.tax_group, line.currency)
    return LineAmounts(line, amount, taxes, _sum([amount, *(t.amount for t in taxes)], line.currency))


def document_totals(lines: Iterable[LineAmounts], currency: str) -> DocumentTotals:
    """The sums of ``lines``, all in ``currency`` (an empty document totals zero)."""
    zero = _round(Decimal(0), currency)
    net = gross = zero
    bases: dict[TaxRate, Decimal] = {}  # insertion order: the order of first use
    amounts: dict[TaxRate, Decimal] = {}
    for priced in lines:
        if priced.line.currency != currency:
            raise TaxError(f"a {priced.line.currency} line on a {currency} document: {priced.line.description}")
        net = _EXACT.add(net, priced.net)
        gross = _EXACT.add(gross, priced.gross)
        for tax in priced.taxes:
            bases[tax.rate] = _EXACT.add(bases.get(tax.rate, zero), tax.base)
            amounts[tax.rate] = _EXACT.add(amounts.get(tax.rate, zero), tax.amount)
    return DocumentTotals(
        currency,
        _round(net, currency),
        tuple(TaxAmount(rate, _round(bases[rate], currency), _round(amounts[rate], currency)) for rate in amounts),
        _round(gross, currency),
    )


def price_document(lines: Iterable[DocumentLine], currency: str) -> tuple[tuple[LineAmounts, ...], DocumentTotals]:
    """Every line priced, and the document's totals: their sums."""
    priced = tuple(price_line(line) for line in lines)
    return priced, document_totals(priced, currency)


def split_proportionally(amount: Decimal, weights: Sequence[Decimal], currency: str) -> tuple[Decimal, ...]:
    """``amount`` cut into one part per weight, proportional to the weights, adding up to ``amount``.

    Largest remainder, in minor units and exact arithmetic: every part first gets its exact share
    rounded down to a minor unit, then the minor units left over go one each to the parts whose
    shares lost the most (ties: the earlier part). So every part is within one minor unit of its
    exact share (``amount * weight / sum(weights)``), strictly, and a weight whose share is a whole
    number of minor units gets exactly that: splitting an invoice's gross by its lines' grosses
    gives back the lines' grosses. ``amount`` must be a whole number of minor units; the weights
    may have any sign but must not sum to zero.
    """
    _decimal(amount, "an amount")
    if _round(amount, currency) != amount:
        raise TaxError(f"{amount} is not a whole number of {currency} minor units")
    if not weights:
        raise TaxError("nothing to split an amount across")
    fractions = [Fraction(_decimal(weight, "a weight")) for weight in weights]
    total_weight = sum(fractions, Fraction(0))
    if total_weight == 0:
        raise TaxError("the weights add up to zero")
    unit = money.minor_unit(currency)
    units = int(_EXACT.divide(amount, unit))  # exact: amount is a whole number of units
    shares = [units * weight / total_weight for weight in fractions]
    floors = [share.numerator // share.denominator for share in shares]
    left = units - sum(floors)  # 0 <= left < len(weights): the sum of the fractional parts
    by_remainder = sorted(range(len(shares)), key=lambda i: (floors[i] - shares[i], i))
    for i in by_remainder[:left]:
        floors[i] += 1
    return tuple(_round(_EXACT.multiply(Decimal(n), unit), currency) for n in floors)
