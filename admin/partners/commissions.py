"""Percentage mode's commissions (issue 18), pure: which rate a line earns at, and what one
allocation of a payment earns. No SQL, no I/O (commissions_store.py reads and writes).

The rule:

- A commission is earned on money received from a customer of a partner whose mode on the day
  is ``percentage`` (partner_modes; before a partner's first row its mode is ``direct``).
  Each allocation of a payment (a credit transaction of kind ``payment``; not credit notes, not
  corrections) earns once.
- Its base is the part of the allocated amount that is net of tax. Paying a document, the amount
  is split over the document's lines in proportion to their gross, and each line's part is taken
  net of its tax: line ``i`` gets ``paid * net_i / total``. Each line earns at its own rate: a
  line with a service at its tariff's rate, else the ``service`` category's; a one-time charge
  (a next-invoice item, or a line with no service) at ``one_time``'s; a fee (its transaction's
  kind ``fee``) at ``fee``'s. A payment allocated to a debit on no document (a prepaid charge)
  is ``service`` at its service's tariff (or ``fee``/``one_time`` as its kind says), the whole
  amount its base (such a debit carries no tax).
- The rate: the tariff's rate before the category's before the partner's ``commission_percent``
  (:meth:`Rates.rate`).
- A released allocation (its payment taken back, or the invoice it paid made void) earns the
  negative of what its original earned, pro rata of the amount released (a full release, which
  is what the ledger writes, is exactly the negation, cent for cent).
- Amounts are rounded to the currency per commission row (admin/billing/money.py, half up);
  the base keeps 4 decimals. ``detail`` keeps each line's base and rate.

Worked example (tests/unit/partners/test_commissions.py): an invoice of 120.00 (100.00 net +
20.00 VAT) at 10 % paid in two parts: 50.00 -> base 41.6667 -> 4.17; 70.00 -> base 58.3333 ->
5.83; together 10.00. The 70.00 taken back: -5.83.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from admin.billing import money

CATEGORIES = ("service", "one_time", "fee")
MODES = ("direct", "percentage", "own_invoicing", "aggregated")
HUNDRED = Decimal(100)
BASE_PLACES = Decimal("0.0001")
"""The base as numeric(14, 4) keeps it."""


class CommissionError(ValueError):
    """A commission that cannot be worked out (a line in a category nobody knows, ...)."""


@dataclass(frozen=True, slots=True)
class Rates:
    """A partner's rates: its percent, and the tariffs' and categories' that come before it."""

    percent: Decimal
    tariffs: Mapping[int, Decimal] = field(default_factory=dict)
    categories: Mapping[str, Decimal] = field(default_factory=dict)

    def rate(self, category: str, tariff_id: int | None = None) -> Decimal:
        """The percent a line of ``category`` (of ``tariff_id``'s service) earns at."""
        if category not in CATEGORIES:
            raise CommissionError(f"unknown category {category!r}")
        if tariff_id is not None and tariff_id in self.tariffs:
            return self.tariffs[tariff_id]
        if category in self.categories:
            return self.categories[category]
        return self.percent


def category_of(transaction_kind: str | None, service_id: int | None, one_time: bool = False) -> str:
    """What a line (or a debit on no document) is: a fee by its transaction's kind, a one-time
    charge when it is a next-invoice item or names no service, else a service's charge."""
    if transaction_kind == "fee":
        return "fee"
    if one_time or service_id is None:
        return "one_time"
    return "service"


def mode_on(modes: Sequence[tuple[dt.date, str]], day: dt.date) -> str:
    """A partner's mode on ``day`` from its (starts_on, mode) rows: the latest that started, else direct."""
    found = "direct"
    for starts_on, mode in sorted(modes):
        if starts_on <= day:
            found = mode
    return found


@dataclass(frozen=True, slots=True)
class Line:
    """A paid document's line as the split reads it."""

    position: int
    net: Decimal
    gross: Decimal
    category: str
    tariff_id: int | None = None


@dataclass(frozen=True, slots=True)
class Part:
    """What one line of a payment earned: its base (net, unrounded to 4 places) and rate."""

    position: int | None
    category: str
    tariff_id: int | None
    base: Decimal
    percent: Decimal

    def json(self) -> dict[str, Any]:
        return {"position": self.position, "category": self.category, "tariff_id": self.tariff_id,
                "base": str(self.base), "percent": str(self.percent)}


@dataclass(frozen=True, slots=True)
class Earned:
    """One commission row: its base, its amount (rounded to the currency) and how."""

    base: Decimal
    amount: Decimal
    detail: list[dict[str, Any]]


def _earned(parts: Sequence[Part], currency: str) -> Earned:
    exact = sum((p.base * p.percent / HUNDRED for p in parts), Decimal(0))
    base = sum((p.base for p in parts), Decimal(0)).quantize(BASE_PLACES)
    return Earned(base, money.quantize(exact, currency), [p.json() for p in parts])


def earn_document(paid: Decimal, total: Decimal, lines: Sequence[Line], rates: Rates, currency: str) -> Earned:
    """What ``paid`` of a document of ``total`` (gross) with ``lines`` earns: the rule's split."""
    if total <= 0 or paid == 0:
        return Earned(Decimal(0).quantize(BASE_PLACES), money.quantize(Decimal(0), currency), [])
    parts = [Part(line.position, line.category, line.tariff_id, (paid * line.net / total).quantize(BASE_PLACES),
                  rates.rate(line.category, line.tariff_id)) for line in lines]
    return _earned(parts, currency)


def earn_debit(paid: Decimal, category: str, tariff_id: int | None, rates: Rates, currency: str) -> Earned:
    """What ``paid`` of a debit on no document earns: the whole of it is the base."""
    return _earned([Part(None, category, tariff_id, paid.quantize(BASE_PLACES), rates.rate(category, tariff_id))],
                   currency)


def release(original: Earned, original_paid: Decimal, released: Decimal, currency: str) -> Earned:
    """What releasing ``released`` (negative) of an allocation of ``original_paid`` that earned
    ``original`` earns: its negative, pro rata (a full release: exactly the negation)."""
    if released >= 0 or original_paid <= 0:
        raise CommissionError("a release is negative, of an allocation that paid something")
    share = -released / original_paid
    if share == 1:
        return Earned(-original.base, -original.amount,
                      [{**p, "base": str(-Decimal(p["base"]))} for p in original.detail])
    return Earned((-original.base * share).quantize(BASE_PLACES), money.quantize(-original.amount * share, currency),
                  [{**p, "base": str((-Decimal(p["base"]) * share).quantize(BASE_PLACES))} for p in original.detail])


def month_of(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(first: dt.date) -> dt.date:
    return (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def parse_month(text: str) -> dt.date:
    """``YYYY-MM`` as its first day; ValueError otherwise."""
    year, sep, month = text.strip().partition("-")
    if not sep or len(year) != 4 or len(month) != 2 or not (year + month).isdigit():
        raise ValueError("a month is written YYYY-MM")
    return dt.date(int(year), int(month), 1)


def statement_number(partner_id: int, month: dt.date, currency: str | None = None) -> str:
    """``CS-<partner>-<YYYY>-<MM>``; a second currency of the same month adds ``-<currency>``."""
    base = f"CS-{partner_id}-{month:%Y-%m}"
    return base if currency is None else f"{base}-{currency}"
