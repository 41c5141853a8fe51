"""The API's types for bank statements (admin/finance/statements.py): the banks' column
mappings, statements, their lines with the matching's explanation, the review queue's pairing
and ignoring."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from admin.payments.statements import csvfile
from admin.schemas import Id, Limit, Name, Text

Column = Annotated[int, msgspec.Meta(ge=0, le=csvfile.MAX_COLUMNS - 1, description="a column of the file, from 0")]
Columns = Annotated[list[Column], msgspec.Meta(max_length=10)]
LineStatus = Literal["new", "matched", "paired", "ignored", "error"]
Encoding = Literal["utf-8", "utf-8-sig", "cp1252", "iso-8859-1", "iso-8859-2", "iso-8859-15", "cp1250", "cp850",
                   "cp852", "utf-16"]
"""csvfile.ENCODINGS (tests/unit/payments/test_statements.py holds the two together)."""
Format = Literal["csv", "camt053", "mt940"]


class BankMappingColumns(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """Which column holds what: ``date`` and either ``amount`` (signed) or ``credit``/``debit``;
    ``payer_name``, ``reference`` and ``description`` may join several columns."""

    date: Column
    amount: Column | None = None
    credit: Column | None = None
    debit: Column | None = None
    currency: Column | None = None
    payer_name: Columns = []
    payer_account: Column | None = None
    reference: Columns = []
    description: Columns = []
    bank_ref: Column | None = None
    account: Column | None = None


class BankMappingIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A bank's CSV mapping. ``date_format`` is strptime's (``%d.%m.%Y``); ``skip_lines``: lines
    before the header (or the data); without a currency column the lines are in the billing
    currency."""

    name: Name
    delimiter: Annotated[str, msgspec.Meta(min_length=1, max_length=1)] = ","
    encoding: Encoding = "utf-8"
    skip_lines: Annotated[int, msgspec.Meta(ge=0, le=100)] = 0
    has_header: bool = True
    columns: BankMappingColumns
    date_format: Annotated[str, msgspec.Meta(min_length=2, max_length=40)] = "%Y-%m-%d"
    decimal_comma: bool = False


class BankMapping(msgspec.Struct, kw_only=True):
    id: int
    name: str
    delimiter: str
    encoding: str
    skip_lines: int
    has_header: bool
    columns: BankMappingColumns
    date_format: str
    decimal_comma: bool
    statements: int
    created_at: dt.datetime
    updated_at: dt.datetime


class StatementQuery(msgspec.Struct, kw_only=True):
    after: Text | None = None
    limit: Limit = 50


class UploadQuery(msgspec.Struct, kw_only=True):
    """How to read an uploaded file: CAMT.053 and MT940 are known by their content; a CSV file
    names its bank's mapping."""

    mapping_id: Id | None = None
    file_name: Text | None = None


class Statement(msgspec.Struct, kw_only=True):
    """An imported statement: ``line_count`` lines in the file, ``duplicate_count`` of them known
    from an earlier statement; ``waiting``: lines waiting for a person (new, error)."""

    id: int
    file_name: str
    format: Format
    mapping_id: int | None
    mapping: str | None
    account: str
    line_count: int
    duplicate_count: int
    waiting: int
    imported_by: str
    imported_at: dt.datetime
    counts: dict[str, int] = {}


class Imported(msgspec.Struct, kw_only=True):
    """An import's outcome: its statement, the new lines by status, the payments recorded."""

    statement: Statement
    counts: dict[str, int]
    payments: int
    seconds: float


class Signal(msgspec.Struct):
    signal: str
    points: int
    detail: str


class StatementLine(msgspec.Struct, kw_only=True):
    """A line as the bank said it, its status, the customer (and document) it was matched or
    paired with or is suggested for (``new``), its score (0-100) and why (``explanation``)."""

    id: int
    statement_id: int
    position: int
    booked_on: dt.date
    amount: Decimal
    currency: str
    payer_name: str
    payer_account: str
    reference: str
    description: str
    bank_ref: str
    status: LineStatus
    customer_id: int | None
    customer_number: str | None
    customer_name: str | None
    document_id: int | None
    document_number: str | None
    score: int | None
    explanation: list[Signal]
    error: str
    payment_id: int | None


class LineQuery(msgspec.Struct, kw_only=True):
    status: LineStatus | None = None
    after: Text | None = None
    limit: Limit = 50


class ReviewQuery(msgspec.Struct, kw_only=True):
    """The review queue: lines waiting for a person (new and error; one of them with ``status``)."""

    status: Literal["new", "error"] | None = None
    after: Text | None = None
    limit: Limit = 50


class PairIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Whose payment the line is; ``document_id``: an invoice or proforma of that customer it pays first."""

    customer_id: Id
    document_id: Id | None = None


class IgnoreIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]


class CandidateQuery(msgspec.Struct, kw_only=True):
    """A login, a name, an email, a phone, a customer number or a document number."""

    q: Text = ""


class Candidate(msgspec.Struct, kw_only=True):
    customer_id: int
    number: str
    name: str
    status: str
    match: str
    payment_reference: str
    document_id: int | None = None
