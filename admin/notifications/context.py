"""What a message template sees: plain, frozen views of the entities a notice is about.

context_store.py builds them from the database when the message is sent; samples.py builds
sample ones for the editor's check and preview. templates.py turns a :class:`MessageContext`
into the names a template reads (``customer``, ``brand``, ``document``, ``invoices``, ...: see
``templates.variables()``). Money is :class:`~decimal.Decimal` in the view's currency, dates are
:class:`datetime.date`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class CustomerView:
    id: int
    number: str
    name: str
    email: str = ""  # where a billing notice goes: the billing email when set, else the email
    phone: str = ""
    country: str = ""
    language: str = ""  # '' : the partner's default
    balance: Decimal = Decimal(0)  # credits less debits; negative: owes
    currency: str = "EUR"
    status: str = "active"
    portal_url: str = ""


@dataclass(frozen=True, slots=True)
class BrandView:
    """The partner as its branding names it (partner_branding)."""

    company_name: str
    email: str = ""
    phone: str = ""
    website: str = ""
    address_lines: tuple[str, ...] = ()
    bank_lines: tuple[str, ...] = ()
    footer: str = ""


@dataclass(frozen=True, slots=True)
class DocumentView:
    """An invoice, proforma, credit note or receipt (a payment's notice shows its receipt)."""

    id: int
    kind: str  # invoice, proforma, credit_note, receipt
    number: str
    issued_on: dt.date
    total: Decimal
    currency: str
    due_on: dt.date | None = None
    due: Decimal = Decimal(0)  # what is still to pay of it
    period_start: dt.date | None = None
    period_end: dt.date | None = None  # exclusive
    related_number: str = ""  # a credit note's invoice, a receipt's invoice
    payment_reference: str = ""


@dataclass(frozen=True, slots=True)
class PaymentView:
    id: int
    amount: Decimal
    currency: str
    paid_on: dt.date
    method: str = ""  # the payment type's name
    receipt_number: str = ""


@dataclass(frozen=True, slots=True)
class PrepaidView:
    """A prepaid customer's outlook: the balance lasts ``days_left`` days at ``daily_cost``."""

    balance: Decimal
    daily_cost: Decimal
    days_left: int
    blocking_on: dt.date
    currency: str = "EUR"


@dataclass(frozen=True, slots=True)
class CardView:
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True, slots=True)
class ServiceView:
    id: int
    login: str
    tariff: str
    end_date: dt.date | None = None


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Everything one message is rendered from; what does not apply to its kind is None or empty."""

    kind: str
    customer: CustomerView
    brand: BrandView
    today: dt.date
    locale: str = "en"
    document: DocumentView | None = None
    payment: PaymentView | None = None
    invoices: tuple[DocumentView, ...] = ()  # reminders: the unpaid invoices, oldest first
    amount_due: Decimal = Decimal(0)  # reminders: what the unpaid invoices still ask for
    reminder: int = 0  # 1, 2 or 3 for reminder_N
    prepaid: PrepaidView | None = None
    card: CardView | None = None
    service: ServiceView | None = None
    extra: dict[str, str] = field(default_factory=dict)  # ticket replies, announcements: their own fields
