"""Allocation of credits (payments, credit notes) to debts (debit transactions, invoices). Pure.

The rule is Splynx's (its customer billing documentation):

- "If the customer has a transaction (+Debit) and an Unpaid invoice … the transaction will be paid
  off first, then the invoice": standalone debit transactions come before invoices;
- "several Unpaid invoices … paid in the order of their creation": within each kind, oldest first;
- an overpayment "stays on the balance" ("the invoice won't become overpaid"): what a credit cannot
  place stays as its rest, to be allocated to the debts that come later.

Credits are taken oldest first too. A credit may name what it pays (a payment for a service and a
period, a credit note linked to its invoice): it goes first to the debts it names, in the same
order, and what is left of it then follows the default order. Ties are broken by id, so the result
depends on the rows only, never on the order they are passed in.

Amounts are exact in the currency's minor unit (``money.quantize`` leaves them unchanged): an
allocation is the smaller of two such amounts, so nothing here ever rounds.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from . import money
from .periods import Period


class AllocationError(ValueError):
    pass


class CreditKind(enum.StrEnum):
    PAYMENT = "payment"
    CREDIT_NOTE = "credit_note"


class DebtKind(enum.StrEnum):
    """What a credit pays; the values are ``allocation.target_kind``'s."""

    TRANSACTION = "ledger_entry"  # a standalone debit transaction (a charge or fee not on an invoice)
    INVOICE = "invoice"


#: the default order of kinds: transactions before invoices
KIND_ORDER = {DebtKind.TRANSACTION: 0, DebtKind.INVOICE: 1}

CreditKey = tuple[CreditKind, int]
DebtKey = tuple[DebtKind, int]


@dataclass(frozen=True, slots=True)
class Debt:
    """Something owed: ``amount`` is what is still open on it (its total less what was allocated)."""

    kind: DebtKind
    id: int
    date: dt.date
    amount: Decimal
    service_id: int | None = None
    period: Period | None = None

    @property
    def key(self) -> DebtKey:
        return (self.kind, self.id)


@dataclass(frozen=True, slots=True)
class Credit:
    """Money to place: ``amount`` is what is not allocated yet.

    ``service_id`` and ``period`` name what a payment is for: it goes first to the debts of that
    service whose period (a half-open :class:`periods.Period`) lies within ``period`` (any period
    when ``period`` is None; any service when ``service_id`` is None). ``debt`` names one debt to
    pay first (a credit note's invoice, a payment made for an invoice). None of them: the default
    order only."""

    kind: CreditKind
    id: int
    date: dt.date
    amount: Decimal
    service_id: int | None = None
    period: Period | None = None
    debt: DebtKey | None = None

    @property
    def key(self) -> CreditKey:
        return (self.kind, self.id)

    @property
    def targeted(self) -> bool:
        return self.service_id is not None or self.period is not None or self.debt is not None

    def names(self, debt: Debt) -> bool:
        """True when this credit names ``debt`` as one to pay first."""
        if self.debt is not None:
            return debt.key == self.debt
        if not self.targeted:
            return False
        if self.service_id is not None and debt.service_id != self.service_id:
            return False
        return self.period is None or (debt.period is not None and self.period.covers(debt.period))


@dataclass(frozen=True, slots=True)
class Allocation:
    """One row of the allocation table: ``amount`` (> 0) of ``source`` pays ``target``."""

    source: CreditKey
    target: DebtKey
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Result:
    """The allocations, and what is left on every credit and debt given (zero included)."""

    allocations: tuple[Allocation, ...]
    credit_rest: dict[CreditKey, Decimal]
    debt_rest: dict[DebtKey, Decimal]

    @property
    def unallocated(self) -> Decimal:
        """What stays on the balance: the credits' rest."""
        return sum(self.credit_rest.values(), money.ZERO)

    @property
    def open(self) -> Decimal:
        """What is still owed: the debts' rest."""
        return sum(self.debt_rest.values(), money.ZERO)


def debt_order(debt: Debt) -> tuple[int, dt.date, int]:
    """The default order of debts: transactions before invoices, then oldest first, then by id."""
    return (KIND_ORDER[debt.kind], debt.date, debt.id)


def credit_order(credit: Credit) -> tuple[dt.date, int, str]:
    """The order credits are placed in: oldest first, then by id (then kind, ids being per kind)."""
    return (credit.date, credit.id, credit.kind.value)


def allocate(credits: Iterable[Credit], debts: Iterable[Debt], currency: str) -> Result:
    """Place ``credits`` on ``debts`` (see the module's docstring for the rule).

    Allocating credits one by one as they arrive (each call given the rests the previous left)
    gives the same rows as allocating them together, as long as they arrive in :func:`credit_order`."""
    credit_list = sorted(credits, key=credit_order)
    debt_list = sorted(debts, key=debt_order)
    _check(credit_list, debt_list, currency)
    open_ = {d.key: d.amount for d in debt_list}
    rest = {c.key: c.amount for c in credit_list}
    rows: list[Allocation] = []
    for credit in credit_list:
        left = credit.amount
        named = [d for d in debt_list if credit.names(d)] if credit.targeted else []
        for debt in [*named, *debt_list]:
            if left == 0:
                break
            take = min(left, open_[debt.key])
            if take > 0:
                rows.append(Allocation(credit.key, debt.key, take))
                open_[debt.key] -= take
                left -= take
        rest[credit.key] = left
    return Result(tuple(rows), rest, open_)


def _check(credits: list[Credit], debts: list[Debt], currency: str) -> None:
    seen_credits: set[CreditKey] = set()
    for c in credits:
        _check_amount(f"{c.kind} {c.id}", c.amount, currency)
        if c.key in seen_credits:
            raise AllocationError(f"{c.kind} {c.id} is given twice")
        seen_credits.add(c.key)
    seen_debts: set[DebtKey] = set()
    for d in debts:
        _check_amount(f"{d.kind} {d.id}", d.amount, currency)
        if d.key in seen_debts:
            raise AllocationError(f"{d.kind} {d.id} is given twice")
        seen_debts.add(d.key)


def _check_amount(what: str, amount: Decimal, currency: str) -> None:
    if money.quantize(amount, currency) != amount:  # quantize also refuses floats and NaN
        raise AllocationError(f"{what}: {amount} is not a whole number of {money.minor_unit(currency)} {currency}")
    if amount < 0:
        raise AllocationError(f"{what}: the amount to allocate is negative ({amount})")
