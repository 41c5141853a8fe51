"""What a billing document shows, as plain frozen values: the renderer's whole input.

Nothing here knows SQL: the finance area and the worker read their rows and build these, and the
templates read only these. Amounts are ``Decimal`` (checked on construction: a float on an
invoice is a bug, not a rounding question) and are formatted by the templates' ``money`` filter
(:func:`admin.billing.money.format_money`, the document's currency and locale); dates are
``datetime.date`` and formatted per locale with Babel.

Balances on a statement are as the ledger keeps them: credits less debits, so a negative balance
is what the customer owes.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, fields
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal, get_args

from babel.dates import format_date
from babel.numbers import format_percent

from admin.billing import money

Kind = Literal["invoice", "proforma", "credit_note", "receipt"]
#: A document's state as billing_documents_state gives it (schema.sql).
Status = Literal["unpaid", "partially_paid", "paid", "overdue", "void", "issued"]
KINDS: tuple[Kind, ...] = get_args(Kind)
STATUSES: tuple[Status, ...] = get_args(Status)

_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_LOGO_TYPES = frozenset({"image/png", "image/jpeg", "image/svg+xml", "image/webp", "image/gif"})


def percent_text(percent: Decimal, locale: str) -> str:
    """A tax rate's percent as people of ``locale`` write it: ``Decimal("20.0000")`` -> "20%" (en),
    "9,975 %" (fr); for :attr:`Line.tax_percent_text` and the templates' ``percent`` filter."""
    return str(format_percent((percent / 100).normalize(), locale=locale, decimal_quantization=False))


class ModelError(ValueError):
    """A document built with values it cannot show (a float amount, an unknown kind, ...)."""


def _amounts(value: object, *names: str) -> None:
    for name in names:
        amount = getattr(value, name)
        if amount is not None and not isinstance(amount, Decimal):
            raise ModelError(f"{type(value).__name__}.{name} must be a Decimal, not {type(amount).__name__}")
        if isinstance(amount, Decimal) and not amount.is_finite():
            raise ModelError(f"{type(value).__name__}.{name} is {amount}, not an amount")


def _texts(value: object) -> None:
    """Tuples of lines given as a list are taken as tuples (so the value stays hashable)."""
    for f in fields(value):  # type: ignore[arg-type]
        v = getattr(value, f.name)
        if isinstance(v, list):
            object.__setattr__(value, f.name, tuple(v))


@dataclass(frozen=True)
class Branding:
    """The issuing company as a partner's branding describes it (partner_branding)."""

    company_name: str
    address_lines: tuple[str, ...] = ()
    tax_id: str = ""
    bank_lines: tuple[str, ...] = ()  # "IBAN AT61 1904 3002 3457 3201", "BIC ...", as written
    email: str = ""
    phone: str = ""
    website: str = ""
    logo_svg: str | None = None  # the SVG document's text
    logo: bytes | None = None  # or a raster (or SVG) image's bytes, with its type
    logo_mime: str = ""
    accent_color: str = "#1f6feb"
    footer: str = ""

    def __post_init__(self) -> None:
        _texts(self)
        if not _COLOR.fullmatch(self.accent_color):
            raise ModelError(f"accent colour {self.accent_color!r} is not #rrggbb")
        if self.logo is not None and self.logo_mime not in _LOGO_TYPES:
            raise ModelError(f"logo type {self.logo_mime!r} is not one of {', '.join(sorted(_LOGO_TYPES))}")
        if self.logo_svg is not None and self.logo is not None:
            raise ModelError("a branding has one logo: logo_svg or logo, not both")

    @property
    def logo_uri(self) -> str | None:
        """The logo as a ``data:`` URI (the only kind of URL the renderer fetches), or None."""
        if self.logo_svg:
            data, mime = self.logo_svg.encode(), "image/svg+xml"
        elif self.logo:
            data, mime = self.logo, self.logo_mime
        else:
            return None
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


@dataclass(frozen=True)
class Party:
    """The customer a document is addressed to."""

    name: str
    number: str = ""  # the customer number
    address_lines: tuple[str, ...] = ()
    tax_id: str = ""
    email: str = ""
    #: The customer's own payment reference, as printed (admin/payments/reference.py: "RF18 0000 1234"),
    #: which a bank transfer quotes so that it is matched to this customer.
    payment_reference: str = ""

    def __post_init__(self) -> None:
        _texts(self)


@dataclass(frozen=True)
class Period:
    """Billing days from ``start`` to ``end``, ``end`` exclusive (as periods.py and schema.sql keep them)."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ModelError(f"period {self.start} .. {self.end} is empty (the end is exclusive)")

    @property
    def last(self) -> date:
        """The last day of the period (what people read on an invoice)."""
        return self.end - timedelta(days=1)

    def text(self, locale: str) -> str:
        """``"1 May 2025 – 31 May 2025"`` in ``locale``'s words (one date for a one-day period)."""
        first = format_date(self.start, "medium", locale=locale)
        if self.last == self.start:
            return str(first)
        return f"{first} – {format_date(self.last, 'medium', locale=locale)}"


@dataclass(frozen=True)
class Line:
    """A priced line of a document (document_lines): net + tax = gross."""

    description: str
    net: Decimal
    tax: Decimal
    gross: Decimal
    quantity: Decimal = Decimal(1)
    unit: str = ""
    unit_price: Decimal | None = None  # None: not shown (a prorated line, say)
    period_text: str = ""  # Period.text(locale), or anything the caller writes
    tax_percent_text: str = ""  # "20%", "20% + 5%" for parallel rates, "" outside tax

    def __post_init__(self) -> None:
        _amounts(self, "net", "tax", "gross", "quantity", "unit_price")


@dataclass(frozen=True)
class TaxSummary:
    """One rate's base and tax over the whole document."""

    name: str
    percent: Decimal
    net: Decimal
    tax: Decimal

    def __post_init__(self) -> None:
        _amounts(self, "percent", "net", "tax")


@dataclass(frozen=True)
class Document:
    """An invoice, a proforma invoice, a credit note or a receipt, as issued.

    ``related_number`` is the credit note's invoice or the (tax) invoice's proforma;
    ``payment_reference`` is what the customer quotes when paying an invoice, and on a receipt
    the payment's own reference (``payment_method`` says how it was paid)."""

    kind: Kind
    number: str
    issued_on: date
    customer: Party
    currency: str
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    locale: str = "en"
    due_on: date | None = None
    period: Period | None = None
    lines: tuple[Line, ...] = ()
    taxes: tuple[TaxSummary, ...] = ()
    paid: Decimal = Decimal(0)
    due: Decimal = Decimal(0)
    status: Status = "unpaid"
    note: str = ""
    related_number: str = ""
    payment_reference: str = ""
    payment_method: str = ""

    def __post_init__(self) -> None:
        _texts(self)
        if self.kind not in KINDS:
            raise ModelError(f"document kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.status not in STATUSES:
            raise ModelError(f"document status {self.status!r} is not one of {', '.join(STATUSES)}")
        money.digits(self.currency)  # MoneyError (a ValueError) for what is not ISO 4217
        _amounts(self, "subtotal", "tax_total", "total", "paid", "due")

    @property
    def stamp(self) -> str | None:
        """The status stamp across the page: PAID, VOID or OVERDUE, where the kind has one."""
        if self.status == "void":
            return "VOID"
        if self.kind in ("invoice", "proforma") and self.status == "paid":
            return "PAID"
        if self.kind == "invoice" and self.status == "overdue":
            return "OVERDUE"
        return None


@dataclass(frozen=True)
class StatementEntry:
    """One ledger movement: a debit (charge, fee, refund) or a credit (payment, credit note)."""

    on: date
    description: str
    debit: Decimal | None = None
    credit: Decimal | None = None
    balance: Decimal = Decimal(0)  # after this entry
    document_number: str = ""

    def __post_init__(self) -> None:
        _amounts(self, "debit", "credit", "balance")


@dataclass(frozen=True)
class Statement:
    """A customer's account from ``from_date`` to ``to_date`` (both included), in one currency."""

    customer: Party
    currency: str
    issued_on: date
    from_date: date
    to_date: date
    opening_balance: Decimal
    closing_balance: Decimal
    entries: tuple[StatementEntry, ...] = ()
    locale: str = "en"
    note: str = ""

    def __post_init__(self) -> None:
        _texts(self)
        money.digits(self.currency)
        _amounts(self, "opening_balance", "closing_balance")
        if self.to_date < self.from_date:
            raise ModelError(f"statement from {self.from_date} to {self.to_date}: the end is before the start")

    @property
    def kind(self) -> Literal["statement"]:
        return "statement"
