"""The finance area's request and response types: the same struct decodes a form, a query string
or a JSON body and describes it in the OpenAPI document (admin/openapi.py).

Money goes in as a decimal string (``"29.90"``: never a binary floating-point number) and comes
out as one (msgspec encodes ``Decimal`` as a string); a currency's own decimals are checked by
the ledger (admin/billing/money.py), which says which field is wrong.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from admin.schemas import Id, Limit

AMOUNT_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,4})?$"
SIGNED_PATTERN = r"^-?[0-9]{1,10}(\.[0-9]{1,4})?$"
Amount = Annotated[str, msgspec.Meta(
    description='a decimal string with at most 4 decimal places ("29.90"), 0 or more',
    extra_json_schema={"pattern": AMOUNT_PATTERN, "format": "decimal"})]
SignedAmount = Annotated[str, msgspec.Meta(
    description='a decimal string with at most 4 decimal places ("-50.00": a credit limit)',
    extra_json_schema={"pattern": SIGNED_PATTERN, "format": "decimal"})]
Cursor = Annotated[str, msgspec.Meta(max_length=2000, description="the `next` of the previous page")]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"\S")]
Short = Annotated[str, msgspec.Meta(max_length=200, pattern=r"^[^\x00]*$")]
NumberPrefix = Annotated[str, msgspec.Meta(max_length=60, pattern=r"^[^\x00]*$",
                                           description="the start of a document number")]
Days = Annotated[int, msgspec.Meta(ge=0, le=365)]
Direction = Literal["asc", "desc"]

DocumentKind = Literal["invoice", "proforma", "credit_note", "receipt"]
DocumentStatus = Literal["unpaid", "partially_paid", "paid", "overdue", "void", "issued"]
TransactionKind = Literal["charge", "fee", "refund", "payment", "credit_note", "correction", "reversal"]
DebitCredit = Literal["debit", "credit"]
BillingType = Literal["recurring", "prepaid_daily", "prepaid_custom"]
Timing = Literal["advance", "arrears"]
RunStatus = Literal["preview", "cancelled", "issuing", "issued"]
Method = Literal["cash", "bank_transfer", "card", "direct_debit", "online", "other"]

METHODS: dict[str, str] = {"cash": "cash", "bank_transfer": "bank transfer", "card": "card",
                           "direct_debit": "direct debit", "online": "online payment", "other": "other"}
"""A payment's method as the receipt says it."""


# -- transactions -------------------------------------------------------------------------------

class TransactionFilter(msgspec.Struct, kw_only=True):
    """The ledger's rows: ``since`` and ``until`` are posting dates (both included), amounts are
    the row's (always positive: ``direction`` says which way)."""

    customer_id: Id | None = None
    kind: TransactionKind | None = None
    direction: DebitCredit | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    min_amount: Amount | None = None
    max_amount: Amount | None = None


class TransactionQuery(TransactionFilter, kw_only=True):
    sort: Literal["posted_on", "amount", "id"] = "posted_on"
    dir: Direction = "desc"
    after: Cursor | None = None
    limit: Limit = 50


class Transaction(msgspec.Struct, kw_only=True):
    """A debit (charge, fee, refund) lowers the balance, a credit (payment, credit note,
    correction) raises it; a reversal undoes the row it names (``reverses_id``)."""

    id: int
    customer_id: int
    customer_number: str
    customer: str
    direction: DebitCredit
    kind: TransactionKind
    amount: Decimal
    currency: str
    posted_on: dt.date
    description: str
    service_id: int | None
    period_start: dt.date | None
    period_end: dt.date | None
    document_id: int | None
    document_number: str | None
    reverses_id: int | None
    created_by: str
    created_at: dt.datetime


class Total(msgspec.Struct, kw_only=True):
    """What the rows of a list add up to, per currency (``net``: credits less debits)."""

    currency: str
    count: int
    debit: Decimal
    credit: Decimal
    net: Decimal


# -- documents ----------------------------------------------------------------------------------

class DocumentFilter(msgspec.Struct, kw_only=True):
    """Issued documents: ``since`` and ``until`` are issue dates (both included); ``number`` the
    start of the number; ``run_id`` the billing run that issued them."""

    status: DocumentStatus | None = None
    customer_id: Id | None = None
    number: NumberPrefix | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    run_id: Id | None = None


class DocumentListFilter(DocumentFilter, kw_only=True):
    kind: DocumentKind | None = None


class DocumentQuery(DocumentListFilter, kw_only=True):
    sort: Literal["issued_on", "number", "total", "due_on"] = "issued_on"
    dir: Direction = "desc"
    after: Cursor | None = None
    limit: Limit = 50


class Document(msgspec.Struct, kw_only=True):
    """An invoice, proforma invoice, credit note or receipt as issued (it never changes): its
    ``status``, ``paid`` and ``open`` come from what was allocated to it and whether it is void.
    ``period_end`` is exclusive."""

    id: int
    kind: DocumentKind
    number: str
    status: DocumentStatus
    customer_id: int
    customer_number: str
    customer: str
    partner_id: int
    issued_on: dt.date
    due_on: dt.date | None
    period_start: dt.date | None
    period_end: dt.date | None
    currency: str
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    paid: Decimal
    open: Decimal
    origin: str
    related_id: int | None
    run_id: int | None
    note: str
    created_by: str
    created_at: dt.datetime


class LineTax(msgspec.Struct):
    name: str
    percent: Decimal
    amount: Decimal


class Line(msgspec.Struct, kw_only=True):
    position: int
    description: str
    period_start: dt.date | None
    period_end: dt.date | None
    quantity: Decimal
    unit: str
    unit_price: Decimal
    net: Decimal
    tax: Decimal
    gross: Decimal
    taxes: list[LineTax]
    service_id: int | None


class TaxSummary(msgspec.Struct, kw_only=True):
    """A rate's share of a document: the net it was charged on and the tax."""

    name: str
    percent: Decimal
    net: Decimal
    tax: Decimal


class Allocation(msgspec.Struct, kw_only=True):
    """Credit applied to a debt: ``credit_*`` the payment or credit note, ``target_*`` the invoice
    (or a charge on no invoice). A negative amount releases an earlier allocation (a void)."""

    id: int
    amount: Decimal
    credit_id: int
    credit_document_id: int | None
    credit_document_number: str | None
    target_document_id: int | None
    target_document_number: str | None
    target_transaction_id: int | None
    description: str
    created_by: str
    created_at: dt.datetime


class Related(msgspec.Struct, kw_only=True):
    """A document this one refers to, or that refers to it (a credit note's invoice, a
    proforma's tax invoice, a receipt's invoice)."""

    id: int
    kind: DocumentKind
    number: str
    status: DocumentStatus
    issued_on: dt.date
    total: Decimal


class Voided(msgspec.Struct):
    at: dt.datetime
    by: str
    reason: str


class DocumentDetail(Document, kw_only=True):
    lines: list[Line]
    taxes: list[TaxSummary]
    allocations: list[Allocation]
    related: list[Related]
    void: Voided | None


class PaymentIn(msgspec.Struct, kw_only=True):
    """A payment received by hand: ``on`` its date (today, UTC, if not given). The same
    ``idempotency_key`` again records nothing and answers with the first payment."""

    amount: Amount
    method: Method
    on: dt.date | None = None
    reference: Short = ""
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")] | None = None


class Payment(msgspec.Struct, kw_only=True):
    """A payment recorded: its credit (``transaction_id``), the receipt issued for it, and the
    customer's balance after it."""

    transaction_id: int
    customer_id: int
    receipt_id: int | None
    receipt_number: str | None
    amount: Decimal
    currency: str
    balance: Decimal


class VoidIn(msgspec.Struct, kw_only=True):
    reason: Reason


class CreditNoteIn(msgspec.Struct, kw_only=True):
    """A credit note of an invoice: all that is left of it, or ``amount`` of it."""

    reason: Reason
    amount: Amount | None = None


# -- billing runs -------------------------------------------------------------------------------

class RunQuery(msgspec.Struct, kw_only=True):
    status: RunStatus | None = None
    after: Cursor | None = None
    limit: Limit = 50


class RunIn(msgspec.Struct, kw_only=True):
    """A new preview: what is due on ``billing_date``, for one partner's customers or everyone's
    (a partner's administrator previews its own partner's only)."""

    billing_date: dt.date
    partner_id: Id | None = None


class Run(msgspec.Struct, kw_only=True):
    """A billing run: its preview (``preview``) is confirmed (``issuing``, then ``issued``) or
    cancelled. ``totals`` per currency."""

    id: int
    partner_id: int | None
    partner: str | None
    billing_date: dt.date
    status: RunStatus
    created_at: dt.datetime
    created_by: str
    confirm_after: dt.datetime | None
    finished_at: dt.datetime | None
    finished_by: str | None
    customers: int
    documents: int
    totals: dict[str, Decimal]


class RunItemQuery(msgspec.Struct, kw_only=True):
    after: Cursor | None = None
    limit: Limit = 50


class RunLine(msgspec.Struct, kw_only=True):
    """A line the preview would invoice (``period_end`` exclusive)."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    net: Decimal
    tax: Decimal
    gross: Decimal
    period_start: dt.date | None
    period_end: dt.date | None
    service_id: int | None
    kind: str


class RunItem(msgspec.Struct, kw_only=True):
    customer_id: int
    customer_number: str
    customer: str
    currency: str
    total: Decimal
    lines: list[RunLine]


# -- a customer's billing -----------------------------------------------------------------------

class CustomerBilling(msgspec.Struct, kw_only=True):
    """A customer's billing settings and where its account stands: ``balance`` is credits less
    debits (negative: it owes), ``open`` what its invoices still ask, ``overdue`` of it past due.
    A null ``block_after_due_days`` or ``deactivate_after_block_days`` means never."""

    customer_id: int
    enabled: bool
    billing_type: BillingType
    timing: Timing
    billing_day: int
    months_in_advance: int
    period_days: int | None
    due_days: int
    block_after_due_days: int | None
    deactivate_after_block_days: int | None
    min_balance: Decimal
    currency: str
    balance: Decimal
    open: Decimal
    overdue: Decimal
    updated_at: dt.datetime


class CustomerBillingIn(msgspec.Struct, kw_only=True):
    """A customer's billing settings as the form gives them (all at once)."""

    enabled: bool = False
    billing_type: BillingType = "recurring"
    timing: Timing = "advance"
    billing_day: Annotated[int, msgspec.Meta(ge=1, le=28)] = 1
    months_in_advance: Annotated[int, msgspec.Meta(ge=1, le=12)] = 1
    period_days: Annotated[int, msgspec.Meta(ge=1, le=366)] | None = None
    due_days: Days = 15
    block_after_due_days: Days | None = None
    deactivate_after_block_days: Days | None = None
    min_balance: SignedAmount = "0"


class CustomerBillingPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The settings to change (null: never block, never deactivate; monthly for ``period_days``)."""

    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    billing_type: BillingType | msgspec.UnsetType = msgspec.UNSET
    timing: Timing | msgspec.UnsetType = msgspec.UNSET
    billing_day: Annotated[int, msgspec.Meta(ge=1, le=28)] | msgspec.UnsetType = msgspec.UNSET
    months_in_advance: Annotated[int, msgspec.Meta(ge=1, le=12)] | msgspec.UnsetType = msgspec.UNSET
    period_days: Annotated[int, msgspec.Meta(ge=1, le=366)] | msgspec.UnsetType | None = msgspec.UNSET
    due_days: Days | msgspec.UnsetType = msgspec.UNSET
    block_after_due_days: Days | msgspec.UnsetType | None = msgspec.UNSET
    deactivate_after_block_days: Days | msgspec.UnsetType | None = msgspec.UNSET
    min_balance: SignedAmount | msgspec.UnsetType = msgspec.UNSET


CUSTOMER_BILLING_EDITABLE = tuple(CustomerBillingIn.__struct_fields__)


class StatementEntry(msgspec.Struct, kw_only=True):
    on: dt.date
    description: str
    document: str | None
    debit: Decimal
    credit: Decimal
    balance: Decimal
    period_start: dt.date | None
    period_end: dt.date | None


class Statement(msgspec.Struct, kw_only=True):
    """Every transaction from the first, with the balance after each: the walk from zero to ``balance``."""

    customer_id: int
    currency: str
    balance: Decimal
    entries: list[StatementEntry]


class PreviewLine(msgspec.Struct, kw_only=True):
    """A line the customer's next invoice would have, and why (``reason``); ``period_end`` exclusive."""

    description: str
    reason: str
    period_start: dt.date | None
    period_end: dt.date | None
    net: Decimal
    tax: Decimal
    gross: Decimal


class NextInvoice(msgspec.Struct, kw_only=True):
    """What the customer's next recurring invoice would say if it were issued on ``on`` (its next
    billing day, or the day asked for when something is due already)."""

    on: dt.date
    currency: str
    total: Decimal
    lines: list[PreviewLine]


class NextInvoiceQuery(msgspec.Struct, kw_only=True):
    on: dt.date | None = None


class ItemIn(msgspec.Struct, kw_only=True):
    """A one-time charge on the customer's next invoice; ``unit_price`` net (gross when
    ``price_includes_tax``)."""

    description: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*\S[^\x00]*$")]
    unit_price: Amount
    quantity: Amount = "1"
    service_id: Id | None = None
    tax_group_id: Id | None = None
    price_includes_tax: bool = False


class Item(msgspec.Struct, kw_only=True):
    id: int
    customer_id: int
    service_id: int | None
    description: str
    quantity: Decimal
    unit_price: Decimal
    price_includes_tax: bool
    tax_group_id: int | None
    currency: str
    created_by: str
    created_at: dt.datetime


# -- reports ------------------------------------------------------------------------------------

class ReportQuery(msgspec.Struct, kw_only=True):
    """Days from ``since`` to ``until`` (both included; the last 90 days when not given, at most 3 years)."""

    since: dt.date | None = None
    until: dt.date | None = None


class Series(msgspec.Struct, kw_only=True):
    label: str
    unit: str
    values: list[Decimal]


class Chart(msgspec.Struct, kw_only=True):
    """``x``: the days (ISO dates), months (their first day) or age buckets; one value per x in each series."""

    title: str
    x: list[str]
    series: list[Series]


# -- the settings -------------------------------------------------------------------------------

class BillingSettingsIn(msgspec.Struct, kw_only=True):
    """Billing's global settings as the form gives them. A null ``billing_day``: the day a
    customer was created; null blocking or deactivation days: never."""

    enabled: bool = False
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] = "EUR"
    billing_type: BillingType = "recurring"
    timing: Timing = "advance"
    billing_day: Annotated[int, msgspec.Meta(ge=1, le=28)] | None = None
    due_days: Days = 15
    block_after_due_days: Days | None = None
    deactivate_after_block_days: Days | None = None
    min_balance: SignedAmount = "0"
    upgrade_fee: Amount = "0"
    downgrade_fee: Amount = "0"
    invoice_pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\x00]*$")] = "{next|6}"
    proforma_pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\x00]*$")] = "{next|6}"
    credit_note_pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=100,
                                                     pattern=r"^[^\x00]*$")] = "CN{next|6}"
    receipt_pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\x00]*$")] = "R{next|6}"
    block_on_non_working_days: bool = False
    holiday_country: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")] | None = None
    holiday_subdivision: Annotated[str, msgspec.Meta(max_length=10, pattern=r"^[A-Za-z0-9-]+$")] | None = None
    auto_issue: bool = False
    confirmation_days: Annotated[int, msgspec.Meta(ge=0, le=30)] = 3


SETTINGS_EDITABLE = tuple(BillingSettingsIn.__struct_fields__)


class BillingSettings(BillingSettingsIn, kw_only=True):
    updated_at: dt.datetime


class BillingSettingsPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] | msgspec.UnsetType = msgspec.UNSET
    billing_type: BillingType | msgspec.UnsetType = msgspec.UNSET
    timing: Timing | msgspec.UnsetType = msgspec.UNSET
    billing_day: Annotated[int, msgspec.Meta(ge=1, le=28)] | msgspec.UnsetType | None = msgspec.UNSET
    due_days: Days | msgspec.UnsetType = msgspec.UNSET
    block_after_due_days: Days | msgspec.UnsetType | None = msgspec.UNSET
    deactivate_after_block_days: Days | msgspec.UnsetType | None = msgspec.UNSET
    min_balance: SignedAmount | msgspec.UnsetType = msgspec.UNSET
    upgrade_fee: Amount | msgspec.UnsetType = msgspec.UNSET
    downgrade_fee: Amount | msgspec.UnsetType = msgspec.UNSET
    invoice_pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=100,
                                                 pattern=r"^[^\x00]*$")] | msgspec.UnsetType = msgspec.UNSET
    proforma_pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=100,
                                                  pattern=r"^[^\x00]*$")] | msgspec.UnsetType = msgspec.UNSET
    credit_note_pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=100,
                                                     pattern=r"^[^\x00]*$")] | msgspec.UnsetType = msgspec.UNSET
    receipt_pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=100,
                                                 pattern=r"^[^\x00]*$")] | msgspec.UnsetType = msgspec.UNSET
    block_on_non_working_days: bool | msgspec.UnsetType = msgspec.UNSET
    holiday_country: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")] | msgspec.UnsetType | None = msgspec.UNSET
    holiday_subdivision: Annotated[str, msgspec.Meta(max_length=10, pattern=r"^[A-Za-z0-9-]+$")] \
        | msgspec.UnsetType | None = msgspec.UNSET
    auto_issue: bool | msgspec.UnsetType = msgspec.UNSET
    confirmation_days: Annotated[int, msgspec.Meta(ge=0, le=30)] | msgspec.UnsetType = msgspec.UNSET


APPLY_GROUPS: dict[str, tuple[str, ...]] = {
    "billing": ("billing_type", "timing"),
    "billing_day": ("billing_day",),
    "due_days": ("due_days",),
    "dunning": ("block_after_due_days", "deactivate_after_block_days"),
    "min_balance": ("min_balance",),
    "enabled": ("enabled",),
}
"""What "apply to existing customers" can copy from the settings, by group (never the currency:
a customer's ledger is in one)."""

ApplyGroup = Literal["billing", "billing_day", "due_days", "dunning", "min_balance", "enabled"]


class ApplyIn(msgspec.Struct, kw_only=True):
    """Copy these groups of the settings to every customer's billing (a partner's administrator:
    its partner's customers). ``billing``: type and timing; ``dunning``: the blocking and
    deactivation periods. A null ``billing_day`` in the settings is the day each customer was created."""

    groups: Annotated[list[ApplyGroup], msgspec.Meta(min_length=1)]


class Applied(msgspec.Struct):
    customers: int


# -- statements as PDF, proforma invoices from the admin, accounting exports --------------------

class StatementQuery(msgspec.Struct, kw_only=True):
    """A statement's days, ``since`` to ``until`` (both included): by default from the first entry
    to today (or the last entry, when one is posted later); the balance before ``since`` is
    carried as the opening balance."""

    since: dt.date | None = None
    until: dt.date | None = None


class ProformaIn(msgspec.Struct, kw_only=True):
    """A proforma invoice of the customer's next invoice, issued ``on`` (today, UTC, by default):
    the periods its next billing day bills (as many months as its billing settings put on one
    invoice), items for the next invoice left for the tax invoice's run."""

    on: dt.date | None = None


ExportDelimiter = Literal[",", ";"]


class DocumentExportQuery(DocumentListFilter, kw_only=True):
    """The documents the filter selects, all of them, as CSV for accounting software: amounts
    with a decimal point in the currency's minor unit, ISO dates; ``delimiter`` ``;`` where the
    decimal comma is the custom, ``bom`` for Excel."""

    sort: Literal["issued_on", "number", "total", "due_on"] = "issued_on"
    dir: Direction = "desc"
    delimiter: ExportDelimiter = ","
    bom: bool = False


class TransactionExportQuery(TransactionFilter, kw_only=True):
    """The transactions the filter selects, all of them, as CSV (a debit and a credit column)."""

    sort: Literal["posted_on", "amount", "id"] = "posted_on"
    dir: Direction = "desc"
    delimiter: ExportDelimiter = ","
    bom: bool = False
