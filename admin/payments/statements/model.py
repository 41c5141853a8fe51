"""What a bank statement is once read, whatever its format: its account and its lines, each line
what the bank says of one booking (date, signed amount, currency, the other party, the
reference and text it came with, the bank's own id of it).

A file is read whole or refused: every parser raises :class:`StatementError`, whose ``str()``
names the line or element and what is wrong there, and never returns part of a file. A line's
hash (:func:`line_hashes`) is what the bank says of it plus its place among identical lines of
the same file, so importing a file again, or a statement that overlaps an earlier one, finds
its lines known already. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

MAX_BYTES = 32 * 1024 * 1024
"""The largest file taken: a month of a busy account in CAMT.053 is a few megabytes."""
MAX_LINES = 100_000
MAX_TEXT = 2000
"""The longest text a line's field may hold (a remittance line is 140 characters, MT940's :86: 390)."""
MAX_AMOUNT = Decimal("9999999999.9999")  # numeric(14, 4)
FORMATS = ("csv", "camt053", "mt940")
_CURRENCY = re.compile(r"[A-Z]{3}")
_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class StatementError(ValueError):
    """A file refused: ``str()`` says where and why, for the person who uploaded it."""


@dataclass(frozen=True, slots=True)
class Line:
    """One booking. ``amount`` is signed: positive money in (a credit), negative money out."""

    booked_on: dt.date
    amount: Decimal
    currency: str
    payer_name: str = ""       # the other party: who paid (a credit) or was paid (a debit)
    payer_account: str = ""    # its account, an IBAN where the bank gives one (no spaces, upper case)
    reference: str = ""        # the structured reference (a creditor reference, an end-to-end id)
    description: str = ""      # the free text (remittance information, the purpose)
    bank_ref: str = ""         # the bank's own id of the entry


@dataclass(frozen=True, slots=True)
class Statement:
    format: str
    account: str               # the statement's own account (IBAN or number), "" when the file does not say
    lines: tuple[Line, ...]


def text(value: str | None, where: str) -> str:
    """A field's text as kept: control characters out, runs of white space one space, trimmed;
    refused when longer than :data:`MAX_TEXT`."""
    if not value:
        return ""
    if value.isprintable() and "  " not in value and len(value) <= MAX_TEXT:
        return value.strip()
    cleaned = _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()
    if len(cleaned) > MAX_TEXT:
        raise StatementError(f"{where}: {len(cleaned)} characters of text, more than the {MAX_TEXT} a line may have")
    return cleaned


def account(value: str | None, where: str) -> str:
    """An account number as kept: an IBAN without its spaces and in upper case."""
    return text(value, where).replace(" ", "").upper()


def currency(value: str | None, where: str) -> str:
    code = (value or "").strip().upper()
    if not _CURRENCY.fullmatch(code):
        raise StatementError(f"{where}: {value!r} is not a currency code (three letters, like EUR)")
    return code


def amount(value: Decimal, where: str) -> Decimal:
    """An amount as the database keeps it (numeric(14, 4)): at most 4 decimals, under 10 billion."""
    if not value.is_finite() or abs(value) > MAX_AMOUNT:
        raise StatementError(f"{where}: {value} is not an amount a statement line can hold")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        raise StatementError(f"{where}: {value} has more than 4 decimals")
    return value


def check_count(count: int) -> None:
    if count > MAX_LINES:
        raise StatementError(f"the file has more than {MAX_LINES:,} lines: split it")


def check_size(data: bytes) -> None:
    if len(data) > MAX_BYTES:
        raise StatementError(f"the file is {len(data):,} bytes, more than the {MAX_BYTES:,} a statement may have")
    if not data.strip():
        raise StatementError("the file is empty")


def detect(data: bytes) -> str:
    """The format of a file by its content: XML is CAMT.053, a SWIFT message (``:20:`` then
    ``:25:``) is MT940, anything else is taken as CSV (which needs a mapping)."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "camt053"
    sample = head.decode("latin-1")
    if re.search(r"(?m)^:20:", sample) and re.search(r"(?m)^:25:", sample):
        return "mt940"
    return "csv"


def _fold(value: str) -> str:
    return unicodedata.normalize("NFC", value)


def line_hashes(statement: Statement) -> list[str]:
    """Each line's hash (hex sha256): the statement's account, the booking date, the amount, the
    currency, the bank's reference, the reference, the other party's name and account, and the
    line's ordinal among lines of this file that say all of that alike (two equal payments on one
    day are two lines; the same file again, or a statement that overlaps, gives the same hashes)."""
    seen: Counter[str] = Counter()
    out = []
    for line in statement.lines:
        said = "\x1f".join((
            statement.account, line.booked_on.isoformat(), format(line.amount.normalize(), "f"), line.currency,
            _fold(line.bank_ref), _fold(line.reference), _fold(line.payer_name), line.payer_account))
        ordinal = seen[said]
        seen[said] += 1
        out.append(hashlib.sha256(f"{said}\x1e{ordinal}".encode()).hexdigest())
    return out


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def totals(lines: Sequence[Line]) -> Decimal:
    return sum((line.amount for line in lines), Decimal(0))
