"""SWIFT MT940 (Customer Statement Message), read by our own parser, after the SWIFT
Standards MT November 2023 field specifications of MT940.

Why not the ``mt-940`` library: it reads what it recognises and drops the rest without a word
(a file of garbage parses to no lines, a statement without :25: or :60F: is taken, a field it
does not know is skipped), it reads a file from disk when the text it is given happens to name
one, and it logs every field it cannot read at ERROR. Here a file is read whole or refused, and
the refusal names the line. (tests/unit/payments/test_statements_mt940.py compares both on the
samples written for it.)

The message: optional blocks ``{1:...}{2:...}{4:`` around the text block, which ends with
``-}``; then one or more statements, each ``:20:`` (its reference), ``:21:``, ``:25:`` (the
account), ``:28C:`` (its number), ``:60F:`` or ``:60M:`` (the opening balance), any number of
``:61:`` (a booking) each with an optional ``:86:`` (its information), ``:62F:`` or ``:62M:``
(the closing balance), ``:64:``, ``:65:`` and a last ``:86:`` (the statement's information).
The bookings must take the opening balance to the closing one.

``:61:`` is: value date YYMMDD, entry date MMDD (optional), the mark (C credit, D debit, RC
reversal of a credit, RD reversal of a debit), the third letter of the currency (optional),
the amount with a decimal comma, the transaction type (``NTRF``, ``S166``...), the reference
for the account owner (``NONREF`` for none), ``//`` and the bank's reference, and a second
line of supplementary details. ``:86:`` is read in the three shapes banks use: the German
structured one (``166?00GUTSCHRIFT?20...?32NAME``: ``?20``-``?29`` and ``?60``-``?63`` the
purpose, ``?31`` the account, ``?32``-``?33`` the name), the slash-keyword one (``/EREF/...
/REMI/...``, ``/NAME/``, ``/IBAN/``, ``/CNTP/``) and free text. In a SEPA purpose the
keywords ``EREF+`` (the end-to-end reference) and ``SVWZ+`` (the remittance text) are read.
Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

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

KNOWN = frozenset({"20", "21", "25", "28", "28C", "60F", "60M", "61", "86", "62F", "62M", "64", "65", "NS", "13D",
                   "34F", "90C", "90D"})
_FIELD = re.compile(r":(\d{2}[A-Z]?|NS):(.*)")
_BALANCE = re.compile(r"(?P<mark>[CD])(?P<date>\d{6})(?P<currency>[A-Z]{3})(?P<amount>\d[\d,]{0,14})")
_STATEMENT_LINE = re.compile(
    r"(?P<value>\d{6})(?P<entry>\d{4})?(?P<mark>RC|RD|C|D)(?P<funds>[A-Z])?(?P<amount>\d[\d,]{0,14})"
    r"(?P<type>[A-Z][A-Z0-9]{3})(?P<custref>(?:(?!//).){0,34})(?://(?P<bankref>.{0,34}))?")
_SEPA = re.compile(r"(EREF|KREF|MREF|CRED|DEBT|SVWZ|ABWA|ABWE|IBAN|BIC|COAM|OAMT)\+")
_SLASH = re.compile(r"/(EREF|MARF|CSID|CNTP|REMI|NAME|IBAN|BIC|ORDP|BENM|ADDR|PREF|RTRN|ISDT|TRCD|CREF|ULTD|ULTC"
                    r"|PURP|SVCL|OCMT|FX|CHGS|RTRN|ACCW|BENF)/")
SUBFIELD = 27  # the German structured :86: subfields' width


@dataclass(slots=True)
class _Field:
    tag: str
    value: str
    line: int


@dataclass(slots=True)
class _Statement:
    start: int
    fields: list[_Field] = field(default_factory=list)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # SWIFT's character set is ASCII; a bank's names may be Latin-1


def _fields(content: str) -> Iterator[_Field]:
    """The fields of every message in order, each with the line it starts on (blocks 1-3 and 5
    and the ``-}`` end of a text block taken out)."""
    current: _Field | None = None
    for number, raw in enumerate(content.splitlines(), start=1):
        line = raw.rstrip()
        if "{4:" in line:
            line = line.split("{4:", 1)[1]
        elif line.startswith("{"):
            continue  # a header or trailer block: {1:...}{2:...}, {5:...}
        if line.startswith("-"):
            if current is not None:
                yield current
                current = None
            continue  # the end of a text block, "-}" (and what trails it)
        if not line.strip():
            continue
        m = _FIELD.match(line)
        if m is not None:
            if current is not None:
                yield current
            current = _Field(m.group(1), m.group(2), number)
            if current.tag not in KNOWN:
                raise StatementError(f"line {number}: :{current.tag}: is not a field of an MT940 statement")
        elif current is None:
            raise StatementError(f"line {number}: {line[:40]!r} is outside any field (an MT940 field starts with :20:, "
                                 ":25:, :61:, ...)")
        else:
            current.value += "\n" + line
    if current is not None:
        yield current


def _statements(content: str) -> list[_Statement]:
    out: list[_Statement] = []
    for f in _fields(content):
        if f.tag == "20":
            out.append(_Statement(f.line))
        elif not out:
            raise StatementError(f"line {f.line}: :{f.tag}: before the statement's :20:")
        out[-1].fields.append(f)
    if not out:
        raise StatementError("no MT940 statement in the file (it has no :20: field)")
    return out


def parse(data: bytes) -> Statement:
    check_size(data)
    statements = _statements(_decode(data))
    accounts: set[str] = set()
    lines: list[Line] = []
    for s in statements:
        own, booked = _statement(s)
        accounts.add(own)
        check_count(len(lines) + len(booked))
        lines.extend(booked)
    if len(accounts) > 1:
        raise StatementError(f"the file holds statements of {len(accounts)} accounts ({', '.join(sorted(accounts))}): "
                             "import one account's statement at a time")
    if not lines:
        raise StatementError("the statement has no bookings to import")
    return Statement("mt940", accounts.pop(), tuple(lines))


def _amount(raw: str, where: str) -> Decimal:
    if raw.count(",") != 1 or raw.endswith(",,"):
        raise StatementError(f"{where}: {raw!r} is not an MT940 amount (digits with one decimal comma)")
    whole, _, cents = raw.partition(",")
    return amount(Decimal(f"{whole}.{cents or '0'}"), where)


def _yymmdd(raw: str, where: str) -> dt.date:
    try:
        return dt.date(2000 + int(raw[:2]), int(raw[2:4]), int(raw[4:6]))
    except ValueError:
        raise StatementError(f"{where}: {raw!r} is not a date (YYMMDD)") from None


def _balance(f: _Field) -> tuple[Decimal, str]:
    where = f"line {f.line}, :{f.tag}:"
    m = _BALANCE.fullmatch(f.value.strip())
    if m is None:
        raise StatementError(f"{where}: {f.value.strip()!r} is not a balance (mark C or D, date YYMMDD, currency, "
                             "amount: C240430EUR1000,00)")
    _yymmdd(m.group("date"), where)
    value = _amount(m.group("amount"), where)
    return (value if m.group("mark") == "C" else -value), currency(m.group("currency"), where)


def _statement(s: _Statement) -> tuple[str, list[Line]]:
    tags = [f.tag for f in s.fields]
    where = f"the statement of line {s.start}"
    own = ""
    opening: tuple[Decimal, str] | None = None
    closing: tuple[Decimal, str] | None = None
    lines: list[Line] = []
    pending: tuple[_Field, dict[str, str]] | None = None  # a :61: waiting for its :86:
    for f in s.fields:
        if f.tag == "25":
            own = account(f.value.strip().split("\n")[0], f"line {f.line}")
        elif f.tag in ("60F", "60M"):
            if opening is not None:
                raise StatementError(f"line {f.line}: a second opening balance in {where}")
            opening = _balance(f)
        elif f.tag == "61":
            if opening is None:
                raise StatementError(f"line {f.line}: a booking (:61:) before the opening balance (:60F:)")
            if closing is not None:
                raise StatementError(f"line {f.line}: a booking (:61:) after the closing balance (:62F:)")
            if pending is not None:
                lines.append(_line(pending[0], pending[1], "", opening[1]))
            pending = (f, _statement_line(f))
        elif f.tag == "86" and pending is not None:
            lines.append(_line(pending[0], pending[1], f.value, opening[1] if opening else ""))
            pending = None
        elif f.tag in ("62F", "62M"):
            if pending is not None and opening is not None:
                lines.append(_line(pending[0], pending[1], "", opening[1]))
                pending = None
            closing = _balance(f)
    if pending is not None and opening is not None:
        lines.append(_line(pending[0], pending[1], "", opening[1]))
    for tag, what in (("25", "account (:25:)"), ("60", "opening balance (:60F:)"), ("62", "closing balance (:62F:)")):
        if not any(t.startswith(tag) for t in tags):
            raise StatementError(f"{where} has no {what}")
    assert opening is not None and closing is not None
    if opening[1] != closing[1]:
        raise StatementError(f"{where}: its balances are in {opening[1]} and {closing[1]}")
    moved = sum((line.amount for line in lines), Decimal(0))
    if opening[0] + moved != closing[0]:
        raise StatementError(f"{where}: the opening balance {opening[0]} and the bookings ({moved:+}) do not make the "
                             f"closing balance {closing[0]}: the file is incomplete or altered")
    return own, lines


def _statement_line(f: _Field) -> dict[str, str]:
    first, _, rest = f.value.partition("\n")
    m = _STATEMENT_LINE.fullmatch(first.strip())
    if m is None:
        raise StatementError(f"line {f.line}, :61: {first.strip()!r} does not read as value date YYMMDD, entry date "
                             "MMDD, mark C/D/RC/RD, amount with a decimal comma, type (NTRF) and reference")
    out = {k: v or "" for k, v in m.groupdict().items()}
    out["details"] = rest.replace("\n", " ")
    return out


def _line(f: _Field, p: dict[str, str], info: str, code: str) -> Line:
    where = f"line {f.line}, :61:"
    value_date = _yymmdd(p["value"], where)
    booked = value_date
    if p["entry"]:
        month, day = int(p["entry"][:2]), int(p["entry"][2:])
        year = value_date.year + (1 if month == 1 and value_date.month == 12 else
                                  -1 if month == 12 and value_date.month == 1 else 0)
        try:
            booked = dt.date(year, month, day)
        except ValueError:
            raise StatementError(f"{where}: entry date {p['entry']!r} is not a date (MMDD)") from None
    value = _amount(p["amount"], where)
    signed = value if p["mark"] in ("C", "RD") else -value
    said = _information(info)
    custref = p["custref"].strip()
    reference = said.get("reference") or ("" if custref.upper() in ("", "NONREF") else custref)
    description = said.get("description", "")
    if p["details"].strip() and not said:
        description = p["details"].strip()
    at = f"line {f.line}"
    return Line(booked_on=booked, amount=signed, currency=code, payer_name=text(said.get("name"), at),
                payer_account=account(said.get("account"), at), reference=text(reference, at),
                description=text(description, at), bank_ref=text(p["bankref"].strip(), at))


def _information(info: str) -> dict[str, str]:
    """What a booking's :86: says: name, account, reference, description (those it has)."""
    raw = info.strip()
    if not raw:
        return {}
    if re.match(r"\d{3}\?\d\d", raw.replace("\n", "")):
        return _structured(raw.replace("\n", ""))
    if raw.startswith("/") and _SLASH.search(raw):
        return _slashed(raw.replace("\n", ""))
    return {"description": raw.replace("\n", " ")}


def _structured(raw: str) -> dict[str, str]:
    subfields: dict[str, list[str]] = {}
    for m in re.finditer(r"\?(\d\d)([^?]*)", raw):
        subfields.setdefault(m.group(1), []).append(m.group(2))
    purpose_keys = [f"{n}" for n in range(20, 30)] + [f"{n}" for n in range(60, 64)]
    purpose = "".join(_full(p) for k in purpose_keys for p in subfields.get(k, []))
    out = {"name": "".join(_full(p) for k in ("32", "33") for p in subfields.get(k, [])).strip(),
           "account": "".join(subfields.get("31", [])).strip()}
    out.update(_sepa(purpose.strip()))
    return {k: v for k, v in out.items() if v}


def _full(part: str) -> str:
    """A subfield as it joins the next one: a short one ends in a space."""
    return part if len(part) >= SUBFIELD else part + " "


def _sepa(purpose: str) -> dict[str, str]:
    """A SEPA purpose's keywords (``EREF+... SVWZ+...``): the end-to-end reference and the
    remittance text; a purpose without them is all description."""
    marks = list(_SEPA.finditer(purpose))
    if not marks or marks[0].start() > 0:
        return {"description": re.sub(r"\s+", " ", purpose).strip()}
    values: dict[str, str] = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(purpose)
        values[m.group(1)] = re.sub(r"\s+", " ", purpose[m.end():end]).strip()
    out = {"description": values.get("SVWZ", "")}
    eref = values.get("EREF", "")
    if eref and eref.upper() != "NOTPROVIDED":
        out["reference"] = eref.replace(" ", "")
    if not out["description"]:
        out["description"] = " ".join(v for k, v in values.items() if k not in ("EREF", "IBAN", "BIC"))
    return out


def _slashed(raw: str) -> dict[str, str]:
    marks = list(_SLASH.finditer(raw))
    values: dict[str, str] = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(raw)
        values.setdefault(m.group(1), raw[m.end():end].strip("/ "))
    out: dict[str, str] = {}
    if "CNTP" in values:  # /CNTP/account/bic/name/city
        parts = values["CNTP"].split("/")
        out["account"] = parts[0] if parts else ""
        out["name"] = parts[2] if len(parts) > 2 else ""
    out["account"] = values.get("IBAN", out.get("account", ""))
    out["name"] = values.get("NAME", out.get("name", ""))
    remi = values.get("REMI", "")
    remi = re.sub(r"^(USTD|STRD/CUR)?/+", "", remi)
    out["description"] = remi.replace("/", " ").strip()
    for key in ("EREF", "CREF", "PREF"):
        if values.get(key) and values[key].upper() != "NOTPROVIDED":
            out["reference"] = values[key]
            break
    return {k: v for k, v in out.items() if v}
