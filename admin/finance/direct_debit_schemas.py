"""Direct debit's request and response types (admin/finance/direct_debit.py): the creditor's
settings, mandates, batches and their collections, a return file read. Money comes out as a
decimal string (msgspec encodes ``Decimal`` so)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from admin.finance.schemas import Cursor, Direction
from admin.schemas import Id, Limit

Text70 = Annotated[str, msgspec.Meta(max_length=70, pattern=r"^[^\x00]*$")]
Account = Annotated[str, msgspec.Meta(max_length=50, pattern=r"^[A-Za-z0-9 ]*$",
                                      description="an IBAN, spaces allowed (checked with schwifty)")]
Bic = Annotated[str, msgspec.Meta(max_length=14, pattern=r"^[A-Za-z0-9 ]*$",
                                  description="a BIC of 8 or 11 characters; empty: derived from the IBAN when known")]
Identifier = Annotated[str, msgspec.Meta(max_length=35, pattern=r"^[^\x00]*$")]
LeadDays = Annotated[int, msgspec.Meta(ge=1, le=30, description="TARGET2 days between making a batch and its "
                                                                "collection date")]
Scheme = Literal["CORE", "B2B"]
CollectionStatus = Literal["pending", "paid", "failed"]
MandateStatus = Literal["active", "revoked"]


class SettingsOut(msgspec.Struct, kw_only=True):
    """The creditor: ``complete`` when a batch can be made; ``earliest_collection`` the first
    collection date a batch made today may ask for."""

    creditor_id: str
    creditor_name: str
    iban: str
    bic: str
    scheme: Scheme
    lead_days: int
    updated_at: dt.datetime
    complete: bool
    earliest_collection: dt.date


class SettingsIn(msgspec.Struct, kw_only=True):
    """The whole settings form."""

    creditor_id: Identifier
    creditor_name: Text70
    iban: Account
    bic: Bic = ""
    scheme: Scheme = "CORE"
    lead_days: LeadDays = 2


class SettingsPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Only the fields given change; an IBAN given without a BIC has its BIC derived again."""

    creditor_id: Identifier | msgspec.UnsetType = msgspec.UNSET
    creditor_name: Text70 | msgspec.UnsetType = msgspec.UNSET
    iban: Account | msgspec.UnsetType = msgspec.UNSET
    bic: Bic | msgspec.UnsetType = msgspec.UNSET
    scheme: Scheme | msgspec.UnsetType = msgspec.UNSET
    lead_days: LeadDays | msgspec.UnsetType = msgspec.UNSET


class MandateIn(msgspec.Struct, kw_only=True):
    """A customer's signed mandate: ``reference`` made from the customer's number when empty."""

    customer_id: Id
    iban: Account
    holder: Text70
    signed_on: dt.date
    bic: Bic = ""
    reference: Identifier = ""


class MandateFilter(msgspec.Struct, kw_only=True):
    customer_id: Id | None = None
    status: MandateStatus | None = None
    q: Annotated[str, msgspec.Meta(max_length=100, pattern=r"^[^\x00]*$",
                                   description="part of the reference, IBAN, holder, customer number or name")] | None \
        = None


class MandateQuery(MandateFilter, kw_only=True):
    sort: Literal["id", "signed_on", "reference"] = "id"
    dir: Direction = "desc"
    after: Cursor | None = None
    limit: Limit = 50


class Mandate(msgspec.Struct, kw_only=True):
    """A SEPA mandate: one active per customer; ``collections`` how many were made on it."""

    id: int
    customer_id: int
    customer_number: str
    customer: str
    reference: str
    iban: str
    bic: str
    holder: str
    signed_on: dt.date
    status: MandateStatus
    revoked_at: dt.datetime | None
    collections: int
    created_by: str
    created_at: dt.datetime


class BatchIn(msgspec.Struct, kw_only=True):
    """A batch collected on ``collection_date`` (a TARGET2 day, the lead days ahead at least) of
    the unpaid invoices due by ``due_by`` (the collection date when not given)."""

    collection_date: dt.date
    due_by: dt.date | None = None


class DueQuery(msgspec.Struct, kw_only=True):
    """``collection_date``: the first a batch made today may ask for, when not given."""

    collection_date: dt.date | None = None
    due_by: dt.date | None = None


class Due(msgspec.Struct, kw_only=True):
    """What a batch for the date would hold now; ``problem`` why none can be made for it (empty: one can)."""

    collection_date: dt.date
    due_by: dt.date
    earliest_collection: dt.date
    count: int
    total: Decimal
    problem: str


class BatchPage(msgspec.Struct, kw_only=True):
    after: Cursor | None = None
    limit: Limit = 50


class Batch(msgspec.Struct, kw_only=True):
    """A batch and its pain.008 file (``/xml``): counts and totals of the collections the key sees."""

    id: int
    message_id: str
    collection_date: dt.date
    currency: str
    count: int
    total: Decimal
    pending: int
    paid: int
    failed: int
    paid_total: Decimal
    created_by: str
    created_at: dt.datetime


class CollectionFilter(msgspec.Struct, kw_only=True):
    batch_id: Id | None = None
    customer_id: Id | None = None
    mandate_id: Id | None = None
    status: CollectionStatus | None = None


class CollectionQuery(CollectionFilter, kw_only=True):
    sort: Literal["id", "amount"] = "id"
    dir: Direction = "asc"
    after: Cursor | None = None
    limit: Limit = 50


class Collection(msgspec.Struct, kw_only=True):
    """One invoice's collection: ``pending`` until its date, then ``paid`` (``payment_id``), or
    ``failed`` with the bank's ``reason`` (a payment taken back has ``reversed_at``)."""

    id: int
    batch_id: int
    collection_date: dt.date
    customer_id: int
    customer_number: str
    customer: str
    document_id: int
    document_number: str
    mandate_id: int
    mandate_reference: str
    amount: Decimal
    sequence: Literal["FRST", "RCUR", "OOFF", "FNAL"]
    end_to_end_id: str
    status: CollectionStatus
    reason: str
    settled_at: dt.datetime | None
    payment_id: int | None
    reversed_at: dt.datetime | None


class SettleIn(msgspec.Struct, kw_only=True):
    """Settle the pending collections whose date has come: of one batch, or of every batch."""

    batch_id: Id | None = None


class Settled(msgspec.Struct, kw_only=True):
    """``count`` collections made payments now (of ``total``); ``unpinned``: those whose invoice
    was void meanwhile, credited to the customer's balance instead; ``dunning``: what dunning did
    after them (``{"unblock": 3}``)."""

    count: int
    total: Decimal
    unpinned: list[str]
    dunning: dict[str, int]


class ReturnFileIn(msgspec.Struct, kw_only=True):
    """A pain.002 status report, or a camt.054 (or camt.053) with returns, as its XML text."""

    xml: Annotated[str, msgspec.Meta(min_length=1, max_length=4 * 1024 * 1024)]
    file_name: Annotated[str, msgspec.Meta(max_length=200, pattern=r"^[^\x00]*$")] = ""


class ReturnLine(msgspec.Struct, kw_only=True):
    """``result``: ``failed`` (it was pending), ``reversed`` (it was paid: its payment taken back,
    the invoice open again), ``already`` (failed before: nothing done)."""

    end_to_end_id: str
    customer_id: int
    document_number: str
    reason: str
    result: Literal["failed", "reversed", "already"]


class ReturnsApplied(msgspec.Struct, kw_only=True):
    """What the file did; ``unknown``: what it names that is none of our collections or
    batches; ``ignored``: entries that reject or return nothing (accepted, other bookings)."""

    kind: Literal["pain.002", "camt.054", "camt.053"]
    message_id: str
    lines: list[ReturnLine]
    unknown: list[str]
    ignored: int
    summary: str
