"""A bank's CSV export, read through a column mapping made once per bank (bank_mappings): the
delimiter, the encoding, the lines to skip before the data, whether a header row comes first,
which column holds what, the date's format, and whether amounts are written with a decimal
comma. Amounts are one signed column, or a credit column and a debit column.

A row that is empty in every mapped column is skipped (a blank line, a spacer); any other row
that does not read is the whole file refused, naming the line (as a text editor counts them)
and the column. :func:`sample` and :func:`guess` serve the mapping screen: the first rows as
columns, and a first guess of the mapping from the header and the values. Pure: no I/O.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from admin.payments.statements.model import (
    Line,
    Statement,
    StatementError,
    account,
    amount,
    check_count,
    check_size,
    currency,
    text,
)

SINGLE = ("date", "amount", "credit", "debit", "currency", "payer_account", "bank_ref", "account")
"""Fields read from one column."""
JOINED = ("payer_name", "reference", "description")
"""Fields that may be read from several columns, joined with a space (a purpose split over three)."""
FIELDS = SINGLE + JOINED
LABELS = {"date": "booking date", "amount": "amount (signed)", "credit": "credit (money in)",
          "debit": "debit (money out)", "currency": "currency", "payer_name": "payer's name",
          "payer_account": "payer's account (IBAN)", "reference": "reference", "description": "description",
          "bank_ref": "bank's reference", "account": "own account"}
MAX_COLUMNS = 200
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
ENCODINGS = ("utf-8", "utf-8-sig", "cp1252", "iso-8859-1", "iso-8859-2", "iso-8859-15", "cp1250", "cp850", "cp852",
             "utf-16")
DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%d.%m.%y", "%d/%m/%y", "%Y%m%d",
                "%Y/%m/%d", "%d.%m.%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")
_DATE_PARTS = {"%d": "DD", "%m": "MM", "%Y": "YYYY", "%y": "YY", "%H": "hh", "%M": "mm", "%S": "ss", "%b": "Mon",
               "%B": "Month", "%j": "DDD", "%e": "D"}


@dataclass(frozen=True, slots=True)
class Mapping:
    """How to read one bank's CSV. ``columns``: field -> its column numbers (from 0; one for the
    fields of :data:`SINGLE`, one or more for those of :data:`JOINED`). ``currency``: the lines'
    currency when no column says it."""

    columns: dict[str, tuple[int, ...]]
    delimiter: str = ","
    encoding: str = "utf-8"
    skip_lines: int = 0
    has_header: bool = True
    date_format: str = "%Y-%m-%d"
    decimal_comma: bool = False
    currency: str = "EUR"
    name: str = ""


def problems(m: Mapping) -> dict[str, str]:
    """What is wrong with a mapping, by field ("" for the mapping as a whole): empty when none."""
    out: dict[str, str] = {}
    if len(m.delimiter) != 1 or m.delimiter in "\"\r\n":
        out["delimiter"] = "one character, not a quote or a line break"
    try:
        codecs.lookup(m.encoding)
    except LookupError:
        out["encoding"] = f"{m.encoding!r} is not an encoding Python knows"
    if not 0 <= m.skip_lines <= 100:
        out["skip_lines"] = "from 0 to 100"
    if date_problem := _date_format_problem(m.date_format):
        out["date_format"] = date_problem
    unknown = sorted(set(m.columns) - set(FIELDS))
    if unknown:
        out["columns"] = f"no such field: {', '.join(unknown)}"
    used: dict[int, str] = {}
    for name, cols in m.columns.items():
        if name in SINGLE and len(cols) > 1:
            out[name] = "one column only"
        for c in cols:
            if not 0 <= c < MAX_COLUMNS:
                out[name] = f"column numbers go from 0 to {MAX_COLUMNS - 1}"
            elif c in used and used[c] != name:
                out[name] = f"column {c + 1} is the {LABELS[used[c]]} already"
            used[c] = name
    if not m.columns.get("date"):
        out["date"] = "which column holds the booking date?"
    has_amount = bool(m.columns.get("amount"))
    has_split = bool(m.columns.get("credit") or m.columns.get("debit"))
    if has_amount and has_split:
        out["amount"] = "either one signed amount column, or credit and debit columns, not both"
    elif not has_amount and not has_split:
        out["amount"] = "which column holds the amount (or the credit and debit columns)?"
    if not m.columns.get("currency") and not re.fullmatch(r"[A-Z]{3}", m.currency):
        out["currency"] = "no currency column: say the statement's currency (three letters)"
    return out


def _date_format_problem(fmt: str) -> str:
    if not fmt or len(fmt) > 40:
        return "a format like %d.%m.%Y"
    parts = set(re.findall(r"%.", fmt))
    if not ({"%d", "%j"} & parts and ({"%m", "%b", "%B"} & parts or "%j" in parts) and {"%Y", "%y"} & parts):
        return "the format needs the day (%d), the month (%m) and the year (%Y or %y)"
    try:
        dt.datetime.strptime(dt.date(2024, 12, 31).strftime(fmt), fmt)  # noqa: DTZ007  # dates, not times
    except ValueError as e:
        return f"not a date format: {e}"
    return ""


def human_date_format(fmt: str) -> str:
    """``%d.%m.%Y`` -> ``DD.MM.YYYY``."""
    return re.sub(r"%.", lambda m: _DATE_PARTS.get(m.group(0), m.group(0)), fmt)


# -- reading ------------------------------------------------------------------------------------

def decode(data: bytes, encoding: str) -> str:
    try:
        decoded = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise StatementError(f"line {line}: this is not {encoding} text (byte {data[e.start]:#04x}): choose the "
                             "file's encoding in the mapping") from None
    except LookupError:
        raise StatementError(f"{encoding!r} is not an encoding") from None
    if "\x00" in decoded:  # UTF-16 read as a one-byte encoding decodes, with a NUL every other character
        line = decoded.count("\n", 0, decoded.index("\x00")) + 1
        raise StatementError(f"line {line}: the text has NUL characters, so it is not {encoding} (UTF-16?): choose "
                             "the file's encoding in the mapping")
    return decoded.removeprefix("\ufeff")


@dataclass(frozen=True, slots=True)
class Row:
    number: int               # its first line in the file, from 1
    cells: list[str]


def _rows(data: bytes, m: Mapping) -> tuple[list[str], Iterator[Row]]:
    """The header (or []) and the data rows after the skipped lines."""
    content = decode(data, m.encoding)
    lines = content.splitlines(keepends=True)
    if m.skip_lines >= len(lines):
        raise StatementError(f"the file has {len(lines)} lines: nothing is left after skipping {m.skip_lines}")
    offset = m.skip_lines
    reader = csv.reader(io.StringIO("".join(lines[offset:])), delimiter=m.delimiter, strict=True)

    def rows() -> Iterator[Row]:
        start = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise StatementError(f"line {offset + reader.line_num}: {e} (is the delimiter right?)") from None
            if len(cells) > MAX_COLUMNS:
                raise StatementError(f"line {offset + start}: more than {MAX_COLUMNS} columns")
            yield Row(offset + start, cells)
            start = reader.line_num + 1

    it = rows()
    header: list[str] = []
    if m.has_header:
        first = next(it, None)
        if first is None:
            raise StatementError("the file has no header line where the mapping expects one")
        header = [c.strip() for c in first.cells]
    return header, it


def _label(header: Sequence[str], column: int) -> str:
    if column < len(header) and header[column]:
        return f"column {column + 1} ({header[column]!r})"
    return f"column {column + 1}"


def parse_amount(cell: str, decimal_comma: bool) -> Decimal:
    """A written amount: ``1,234.50``, ``-12.5``, ``12.50-``, ``(12.50)``, ``1.234,50`` with a
    decimal comma; thousands separators only in groups of three. ValueError when it is not one."""
    s = cell.strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "").replace("'", "")
    negative = False
    if s.startswith("(") and s.endswith(")"):
        negative, s = True, s[1:-1]
    if s.endswith("-"):
        negative, s = not negative, s[:-1]
    if s[:1] in "+-" and s:
        negative, s = (not negative if s[0] == "-" else negative), s[1:]
    thousands, point = (".", ",") if decimal_comma else (",", ".")
    t, p = re.escape(thousands), re.escape(point)
    if not re.fullmatch(rf"(\d{{1,3}}({t}\d{{3}})+|\d+)({p}\d+)?|{p}\d+", s):
        raise ValueError(cell)
    try:
        value = Decimal(s.replace(thousands, "").replace(point, "."))
    except InvalidOperation:
        raise ValueError(cell) from None
    return -value if negative else value


def parse(data: bytes, m: Mapping) -> Statement:
    """Every line of ``data`` read through ``m``, or StatementError naming the first that does not read."""
    check_size(data)
    wrong = problems(m)
    if wrong:
        raise StatementError("the mapping is incomplete: " + "; ".join(f"{k or 'mapping'}: {v}"
                                                                       for k, v in wrong.items()))
    header, rows = _rows(data, m)
    wanted = max(c for cols in m.columns.values() for c in cols) + 1
    lines: list[Line] = []
    own_accounts: set[str] = set()
    for row in rows:
        cells = row.cells
        mapped = [cells[c] if c < len(cells) else "" for cols in m.columns.values() for c in cols]
        if not any(v.strip() for v in mapped):
            continue
        if len(cells) < wanted:
            raise StatementError(f"line {row.number}: {len(cells)} columns, the mapping reads column {wanted} "
                                 "(is the delimiter right?)")
        check_count(len(lines) + 1)
        line, own = _line(row, header, m)
        lines.append(line)
        if own:
            own_accounts.add(own)
    if not lines:
        raise StatementError("the file has no lines to import")
    if len(own_accounts) > 1:
        raise StatementError(f"the file names {len(own_accounts)} own accounts ({', '.join(sorted(own_accounts))}): "
                             "one statement is one account")
    return Statement("csv", own_accounts.pop() if own_accounts else "", tuple(lines))


def _line(row: Row, header: Sequence[str], m: Mapping) -> tuple[Line, str]:
    def cell(name: str) -> tuple[str, str]:
        cols = m.columns.get(name, ())
        value = " ".join(row.cells[c].strip() for c in cols if row.cells[c].strip())
        where = f"line {row.number}, " + (_label(header, cols[0]) if cols else name)
        return value, where

    raw, where = cell("date")
    try:
        booked = dt.datetime.strptime(raw, m.date_format).date()  # noqa: DTZ007  # a date, no time zone
    except ValueError:
        raise StatementError(f"{where}: {raw!r} is not a date written {human_date_format(m.date_format)}") from None
    value = _amount_of(cell, m)
    code = m.currency
    if m.columns.get("currency"):
        raw, where = cell("currency")
        code = currency(raw, where)
    at = f"line {row.number}"
    return Line(
        booked_on=booked, amount=value, currency=code,
        payer_name=text(cell("payer_name")[0], at), payer_account=account(cell("payer_account")[0], at),
        reference=text(cell("reference")[0], at), description=text(cell("description")[0], at),
        bank_ref=text(cell("bank_ref")[0], at)), account(cell("account")[0], at)


def _amount_of(get: Callable[[str], tuple[str, str]], m: Mapping) -> Decimal:
    """The signed amount of a row; ``get`` gives a field's (value, where)."""
    if m.columns.get("amount"):
        raw, where = get("amount")
        return amount(_number(raw, where, m), where)
    credit, credit_at = get("credit") if m.columns.get("credit") else ("", "")
    debit, debit_at = get("debit") if m.columns.get("debit") else ("", "")
    if credit and debit:
        c, d = _number(credit, credit_at, m), _number(debit, debit_at, m)
        if c and d:
            raise StatementError(f"{credit_at}: the line has a credit ({credit}) and a debit ({debit})")
        return amount(abs(c) if c else -abs(d), credit_at)
    if credit:
        return amount(abs(_number(credit, credit_at, m)), credit_at)
    if debit:
        return amount(-abs(_number(debit, debit_at, m)), debit_at)
    where = (credit_at or debit_at).split(",")[0]
    raise StatementError(f"{where}: no amount (its credit and debit columns are empty)")


def _number(raw: str, where: str, m: Mapping) -> Decimal:
    if not raw:
        raise StatementError(f"{where}: no amount")
    try:
        return parse_amount(raw, m.decimal_comma)
    except ValueError:
        way = "with a decimal comma (1.234,50)" if m.decimal_comma else "with a decimal point (1,234.50)"
        raise StatementError(f"{where}: {raw!r} is not an amount written {way}") from None


# -- the mapping screen -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Sample:
    """The first rows of a file as a mapping reads them: the header (or column numbers) and up to
    ``rows`` rows of values, padded to the widest row."""

    header: list[str]
    rows: list[list[str]]
    width: int
    error: str = ""


def sample(data: bytes, m: Mapping, rows: int = 8) -> Sample:
    """What the mapping screen shows; an ``error`` (and what could be read before it) instead of an
    exception: the person is still choosing the delimiter and the encoding."""
    out: list[list[str]] = []
    header: list[str] = []
    error = ""
    try:
        header, it = _rows(data, m)
        for row in it:
            if any(c.strip() for c in row.cells):
                out.append([c.strip() for c in row.cells])
            if len(out) >= rows:
                break
    except StatementError as e:
        error = str(e)
    width = max([len(header), *(len(r) for r in out)]) if (header or out) else 0
    width = min(width, MAX_COLUMNS)
    pad = [(r + [""] * width)[:width] for r in out]
    names = [(header[i] if i < len(header) and header[i] else f"column {i + 1}") for i in range(width)]
    return Sample(names, pad, width, error)


_HEADER_WORDS: dict[str, tuple[str, ...]] = {
    "date": ("booking date", "buchungstag", "buchungsdatum", "date", "datum", "data", "fecha", "booked", "posted",
             "transaction date"),
    "amount": ("amount", "betrag", "importo", "montant", "kwota", "castka", "částka", "value", "umsatz", "sum"),
    "credit": ("credit", "haben", "gutschrift", "eingang", "paid in", "money in", "deposit"),
    "debit": ("debit", "soll", "lastschrift", "ausgang", "paid out", "money out", "withdrawal"),
    "currency": ("currency", "währung", "waehrung", "ccy", "devise", "měna", "mena", "waluta"),
    "payer_account": ("iban", "account number", "kontonummer", "counterparty account", "payer account", "konto"),
    "payer_name": ("payer", "name", "zahler", "auftraggeber", "empfänger", "beguenstigter", "begünstigter",
                   "counterparty", "partner", "remitter", "from"),
    "reference": ("reference", "referenz", "eref", "end-to-end", "end to end", "kundenreferenz", "ref"),
    "description": ("description", "verwendungszweck", "purpose", "text", "details", "memo", "buchungstext",
                    "remittance", "narrative", "message"),
    "bank_ref": ("transaction id", "bank reference", "bankreferenz", "id"),
}
_AMOUNT_COMMA = re.compile(r"^[-+(]?\d{1,3}(\.\d{3})*,\d{1,4}\)?-?$")


def guess(data: bytes, default_currency: str) -> Mapping:
    """A first mapping for a file never seen: the delimiter and encoding that read it, whether its
    first row is a header, fields by the header's words, the date format and decimal comma that
    read the values. The person checks it on the mapping screen."""
    encoding = "utf-8"
    try:
        data[:65536].decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < 65530:  # not a character cut at the sample's end
            encoding = "cp1252"
    head = decode(data[:65536], encoding) if encoding != "utf-8" else data[:65536].decode("utf-8", "ignore")
    head = head.removeprefix("\ufeff")
    first_lines = head.splitlines()[:20]
    delimiter = max(DELIMITERS, key=lambda d: _steadiness(first_lines, d))
    rows = list(csv.reader(io.StringIO("\n".join(first_lines)), delimiter=delimiter))
    widest = max((len(r) for r in rows), default=0)
    skip = next((i for i, r in enumerate(rows) if len(r) == widest), 0)
    has_header = bool(rows[skip:]) and not any(re.search(r"\d", c) for c in rows[skip])
    header = [c.strip().casefold() for c in rows[skip]] if has_header else []
    values = rows[skip + 1 if has_header else skip:]
    columns: dict[str, tuple[int, ...]] = {}
    taken: set[int] = set()
    for name, words in _HEADER_WORDS.items():
        for i, h in enumerate(header):
            if i not in taken and any(h == w or h.startswith(w) or w in h.split() for w in words):
                if name in JOINED and name in columns:
                    columns[name] = (*columns[name], i)
                elif name not in columns:
                    columns[name] = (i,)
                else:
                    continue
                taken.add(i)
                if name in SINGLE:
                    break
    if "amount" in columns and ("credit" in columns or "debit" in columns):
        columns.pop("credit", None)
        columns.pop("debit", None)
    date_format = "%Y-%m-%d"
    if "date" in columns:
        dates = [r[columns["date"][0]].strip() for r in values if len(r) > columns["date"][0]]
        date_format = next((f for f in DATE_FORMATS if dates and all(_is_date(d, f) for d in dates if d)), date_format)
    money_cols = [c for n in ("amount", "credit", "debit") for c in columns.get(n, ())]
    amounts = [r[c].strip() for r in values for c in money_cols if len(r) > c and r[c].strip()]
    decimal_comma = bool(amounts) and all(_AMOUNT_COMMA.match(a) for a in amounts)
    return Mapping(columns, delimiter, encoding, skip, has_header, date_format, decimal_comma, default_currency)


def _steadiness(lines: Sequence[str], delimiter: str) -> tuple[int, int]:
    """How well ``delimiter`` splits these lines: (rows of the most common width > 1, that width)."""
    widths = [len(r) for r in csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter) if r]
    if not widths:
        return (0, 0)
    common = max(set(widths), key=widths.count)
    return (widths.count(common) if common > 1 else 0, common)


def _is_date(value: str, fmt: str) -> bool:
    try:
        dt.datetime.strptime(value, fmt)  # noqa: DTZ007
    except ValueError:
        return False
    return True


@dataclass(slots=True)
class ColumnsIn:
    """The mapping screen's answer: for each file column (from 0), the field it is, or ""."""

    chosen: dict[int, str] = field(default_factory=dict)

    def columns(self) -> dict[str, tuple[int, ...]]:
        out: dict[str, tuple[int, ...]] = {}
        for col in sorted(self.chosen):
            name = self.chosen[col]
            if name:
                out[name] = (*out.get(name, ()), col)
        return out
