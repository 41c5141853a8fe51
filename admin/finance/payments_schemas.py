"""Finance -> Payments' request and response types (payments.py, payment_types.py): one struct
decodes a form, a query string or a JSON body and describes it in the OpenAPI document.

Money goes in and out as decimal strings (admin/finance/schemas.py says why). A period is
``period_start`` and ``period_end``, the end exclusive, as everywhere in the API.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from admin.finance.schemas import Amount, Cursor, Direction, Reason, Short
from admin.schemas import Id, Limit

Source = Literal["desk", "api", "online", "direct_debit", "bank_statement"]
TypeCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$", max_length=32,
                                       description="a payment type's code (`cash`, `bank_transfer`, ...)")]
TypeName = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\x00]*\S[^\x00]*$")]
Comment = Annotated[str, msgspec.Meta(max_length=1000, pattern=r"^[^\x00]*$")]
BATCH_MAX = 500


class PaymentFilter(msgspec.Struct, kw_only=True):
    """Payments by their date (``since`` and ``until`` included), type, source, customer, amount,
    and whether they were taken back."""

    since: dt.date | None = None
    until: dt.date | None = None
    type: TypeCode | None = None
    source: Source | None = None
    customer_id: Id | None = None
    min_amount: Amount | None = None
    max_amount: Amount | None = None
    reversed: Literal["true", "false"] | None = None  # a query string's words (a bool there is a checkbox)


class PaymentQuery(PaymentFilter, kw_only=True):
    sort: Literal["paid_on", "amount", "id"] = "paid_on"
    dir: Direction = "desc"
    after: Cursor | None = None
    limit: Limit = 50


class PaymentReversal(msgspec.Struct, kw_only=True):
    """A payment taken back: when, by whom, why (and the gateway's refund, for a refund)."""

    at: dt.datetime
    by: str
    reason: str
    refund_ref: str | None


class PaymentEntry(msgspec.Struct, kw_only=True):
    """A payment received: how it came (``type``, ``source``), its receipt (``receipt_id``,
    ``receipt``: lastmile's number; ``receipt_number``: the operator's own, a paper receipt's),
    what it named (an invoice or proforma, or a service and period) and whether it was taken back."""

    id: int
    customer_id: int
    customer_number: str
    customer: str
    type: str
    type_name: str
    source: Source
    paid_on: dt.date
    amount: Decimal
    currency: str
    receipt_id: int
    receipt: str
    receipt_number: str
    payer: str
    comment: str
    document_id: int | None
    document_number: str | None
    service_id: int | None
    period_start: dt.date | None
    period_end: dt.date | None
    gateway: str | None
    gateway_ref: str | None
    created_by: str
    created_at: dt.datetime
    reversal: PaymentReversal | None = None


class PaymentAllocation(msgspec.Struct, kw_only=True):
    """What the payment paid: an invoice (``target_document_*``) or a charge on none; a negative
    amount is what taking it back released."""

    amount: Decimal
    target_document_id: int | None
    target_document_number: str | None
    target_transaction_id: int | None
    description: str
    created_at: dt.datetime


class PaymentEntryDetail(PaymentEntry, kw_only=True):
    allocations: list[PaymentAllocation]
    balance: Decimal  # the customer's, now


class PaymentNew(msgspec.Struct, kw_only=True):
    """A payment received by hand: allocated to ``document_id`` (an invoice, or a proforma
    invoice, whose tax invoice is then issued) when given, else to the charges of ``service_id``
    for ``period_start``..``period_end`` when given, else to what the customer owes, oldest first.
    ``paid_on``: today (UTC) when not given, never later."""

    customer_id: Id
    amount: Amount
    type: TypeCode
    paid_on: dt.date | None = None
    receipt_number: Short = ""
    payer: Short = ""
    comment: Comment = ""
    document_id: Id | None = None
    service_id: Id | None = None
    period_start: dt.date | None = None
    period_end: dt.date | None = None


class PaymentBatchIn(msgspec.Struct, kw_only=True):
    """Several payments recorded together: all of them, or none (``errors`` says which and why,
    as ``payments.N.field``, N from 0)."""

    payments: Annotated[list[PaymentNew], msgspec.Meta(min_length=1, max_length=BATCH_MAX)]


class PaymentBatch(msgspec.Struct, kw_only=True):
    payments: list[PaymentEntry]


class PaymentReversalIn(msgspec.Struct, kw_only=True):
    reason: Reason


class PaymentCustomerQuery(msgspec.Struct, kw_only=True):
    q: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    limit: Annotated[int, msgspec.Meta(ge=1, le=50)] = 10


class PaymentCustomer(msgspec.Struct, kw_only=True):
    """A customer a payment may name: how it was found (``match``), its payment reference, its
    currency and balance (negative: what it owes)."""

    id: int
    number: str
    name: str
    status: str
    match: str
    payment_reference: str
    currency: str
    balance: Decimal


class PaymentType(msgspec.Struct, kw_only=True):
    """How money came: the built-in types (fixed) and the operator's own (renamed, disabled)."""

    code: str
    name: str
    builtin: bool
    enabled: bool
    payments: int


class PaymentTypeIn(msgspec.Struct, kw_only=True):
    code: TypeCode
    name: TypeName


class PaymentTypePatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: TypeName | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
