"""Invoices and transactions as CSV, for accounting software to import.

What accounting software needs and spreadsheets get wrong: amounts with a decimal **point** and
exactly the currency's minor unit (``1234.50``, JPY ``1235``, KWD ``1.235``: no thousands
separator, no currency sign, never the locale's comma), ISO dates (``2025-05-01``), UTF-8 (with a
byte order mark on request: Excel reads UTF-8 without one as ANSI), and a choice of ``,`` or ``;``
between fields (``;`` where the decimal comma is the custom, as spreadsheets there expect).
Text that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` ...) is quoted as the
admin's list exports quote it (:func:`admin.csvcells.safe`).

Rows are plain values: the dataclasses below, or mappings with the same keys. The output is
streamed: :class:`CsvWriter` encodes a header and then any number of batches (an async caller
writes each page of rows it fetched), and :func:`invoices_csv` / :func:`transactions_csv` turn an
iterable of rows into chunks of bytes.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from admin.billing import money
from admin.csvcells import safe

Delimiter = Literal[",", ";"]
BOM = "\ufeff"


class CsvError(ValueError):
    """A row without a column's value, or a value the column cannot write."""


@dataclass(frozen=True)
class InvoiceRow:
    """A document as an export lists it (any kind: invoice, proforma, credit note, receipt)."""

    number: str
    kind: str
    issued_on: date
    customer_number: str
    customer_name: str
    currency: str
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    due_on: date | None = None
    period_start: date | None = None
    period_end: date | None = None  # exclusive, as billing keeps it; exported as the last day
    customer_tax_id: str = ""
    paid: Decimal = Decimal(0)
    status: str = ""
    related_number: str = ""


@dataclass(frozen=True)
class TransactionRow:
    """A ledger transaction: ``amount`` is positive, ``direction`` says which way it goes."""

    id: int
    posted_on: date
    customer_number: str
    customer_name: str
    direction: Literal["debit", "credit"]
    kind: str
    description: str
    amount: Decimal
    currency: str
    document_number: str = ""


Row = Any  # a dataclass instance or a Mapping[str, Any]


def field(row: Row, name: str) -> Any:
    """``row``'s value ``name``, from a mapping or an object's attribute."""
    if isinstance(row, Mapping):
        if name not in row:
            raise CsvError(f"a row has no {name!r} (it has {', '.join(map(str, row))})")
        return row[name]
    try:
        return getattr(row, name)
    except AttributeError:
        raise CsvError(f"a {type(row).__name__} row has no {name!r}") from None


@dataclass(frozen=True)
class Column:
    """A column: its header, and how a row's cell is got and written.

    ``kind`` is ``text`` (formula-quoted), ``date`` (ISO), ``money`` (rounded to the minor unit
    of the row's ``currency`` and written with a point) or ``number`` (an integer or a decimal)."""

    header: str
    get: Callable[[Row], Any]
    kind: Literal["text", "date", "money", "number"] = "text"


def col(name: str, kind: Literal["text", "date", "money", "number"] = "text", header: str | None = None) -> Column:
    return Column(header or name, lambda row: field(row, name), kind)


def _last_day(row: Row) -> date | None:
    end = field(row, "period_end")
    return None if end is None else date.fromordinal(end.toordinal() - 1)


def _signed(direction: str) -> Callable[[Row], Decimal | None]:
    def get(row: Row) -> Decimal | None:
        return field(row, "amount") if field(row, "direction") == direction else None

    return get


INVOICE_COLUMNS: tuple[Column, ...] = (
    col("number"), col("kind"), col("issued_on", "date"), col("due_on", "date"),
    col("period_start", "date"), Column("period_last_day", _last_day, "date"),
    col("customer_number"), col("customer_name"), col("customer_tax_id"), col("currency"),
    col("subtotal", "money"), col("tax_total", "money"), col("total", "money"), col("paid", "money"),
    col("status"), col("related_number"),
)
TRANSACTION_COLUMNS: tuple[Column, ...] = (
    col("posted_on", "date"), col("id", "number"), col("customer_number"), col("customer_name"),
    col("kind"), col("description"), col("document_number"),
    Column("debit", _signed("debit"), "money"), Column("credit", _signed("credit"), "money"), col("currency"),
)


def _write(column: Column, row: Row) -> str:
    value = column.get(row)
    if value is None:
        return ""
    if column.kind == "money":
        if not isinstance(value, Decimal):
            raise CsvError(f"{column.header}: money must be a Decimal, not {type(value).__name__}")
        return format(money.quantize(value, str(field(row, "currency"))), "f")
    if column.kind == "date":
        if not isinstance(value, date):
            raise CsvError(f"{column.header}: {value!r} is not a date")
        return value.isoformat()
    if column.kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise CsvError(f"{column.header}: {value!r} is not a number")
        return format(value, "f") if isinstance(value, Decimal) else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(safe(value if isinstance(value, str) else str(value)))


class CsvWriter:
    """CSV of ``columns``, encoded to UTF-8 batch by batch: ``header()`` first, then ``rows(...)``."""

    def __init__(self, columns: Sequence[Column], *, delimiter: Delimiter = ",", bom: bool = False) -> None:
        if delimiter not in (",", ";"):
            raise CsvError(f"delimiter {delimiter!r}: one of ',' and ';'")
        self.columns = tuple(columns)
        self.bom = bom
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, delimiter=delimiter, lineterminator="\r\n")

    def _take(self) -> bytes:
        data = self._buffer.getvalue().encode()
        self._buffer.seek(0)
        self._buffer.truncate()
        return data

    def header(self) -> bytes:
        if self.bom:
            self._buffer.write(BOM)
        self._csv.writerow([c.header for c in self.columns])
        return self._take()

    def rows(self, rows: Iterable[Row]) -> bytes:
        for row in rows:
            if dataclasses.is_dataclass(row) or isinstance(row, Mapping):
                self._csv.writerow([_write(c, row) for c in self.columns])
            else:
                raise CsvError(f"a row must be a dataclass or a mapping, not {type(row).__name__}")
        return self._take()

    def stream(self, rows: Iterable[Row], batch: int = 500) -> Iterator[bytes]:
        """The header, then ``rows`` in chunks of ``batch`` rows."""
        yield self.header()
        pending: list[Row] = []
        for row in rows:
            pending.append(row)
            if len(pending) >= batch:
                yield self.rows(pending)
                pending.clear()
        if pending:
            yield self.rows(pending)


def invoices_csv(rows: Iterable[Row], *, delimiter: Delimiter = ",", bom: bool = False) -> Iterator[bytes]:
    """Documents (:class:`InvoiceRow` or mappings of its fields) as CSV, streamed."""
    return CsvWriter(INVOICE_COLUMNS, delimiter=delimiter, bom=bom).stream(rows)


def transactions_csv(rows: Iterable[Row], *, delimiter: Delimiter = ",", bom: bool = False) -> Iterator[bytes]:
    """Ledger transactions (:class:`TransactionRow` or mappings) as CSV, a debit and a credit column, streamed."""
    return CsvWriter(TRANSACTION_COLUMNS, delimiter=delimiter, bom=bom).stream(rows)
