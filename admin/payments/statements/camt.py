"""ISO 20022 CAMT.053 (BankToCustomerStatement), versions camt.053.001.02 and later, read with
a hardened parser.

The XML is parsed by defusedxml over expat with a DTD refused outright (a bank statement has
none): no entity is declared, so none is expanded ("billion laughs") and none reads a file or
the network (an external entity); nothing is fetched, ever; the file is at most
:data:`~admin.payments.statements.model.MAX_BYTES`. The parser only walks the tree.

What is read, per statement (``Stmt``): the account (``Acct/Id/IBAN``, else ``Othr/Id``), the
opening and closing balances (``Bal`` of type OPBD or PRCD, and CLBD), and each booked entry
(``Ntry`` whose ``Sts`` is BOOK; pending and information entries are left out): its amount and
currency, credit or debit, booking date (``BookgDt``, else ``ValDt``), the bank's reference
(``AcctSvcrRef``, else ``NtryRef``), and from its transaction details the other party (the
debtor of a credit, the creditor of a debit: ``Nm`` directly or under ``Pty`` from version 08;
the account's IBAN), the structured creditor reference (``RmtInf/Strd/CdtrRefInf/Ref``, an RF
reference), else the end-to-end id, and the unstructured remittance text (``Ustrd``). A batch
entry whose transactions each carry their amount becomes one line per transaction. When a
statement gives both balances, its booked entries must take the opening one to the closing
one: a file cut short is refused rather than half imported. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET  # the tree's types and ParseError; parsing goes through admin/safexml.py
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation

from admin import safexml
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

_NS = re.compile(r"\{urn:iso:std:iso:20022:tech:xsd:camt\.(\d{3})\.001\.(\d{2})\}Document")
_WHAT = {"052": "an account report (camt.052)", "054": "a debit/credit notification (camt.054)"}
OPENING = ("OPBD", "PRCD")
CLOSING = ("CLBD",)


def parse(data: bytes) -> Statement:
    check_size(data)
    root = _tree(data)
    m = _NS.fullmatch(root.tag)
    if m is None or m.group(1) != "053":
        what = _WHAT.get(m.group(1), f"camt.{m.group(1)}") if m else f"<{_local(root.tag)}>"
        raise StatementError(f"this XML is {what}, not a CAMT.053 bank statement: export the statement as camt.053")
    if int(m.group(2)) < 2:
        raise StatementError(f"camt.053.001.{m.group(2)} is not read: versions 02 and later are")
    ns = root.tag[1:].split("}")[0]
    q = _Query(ns)
    message = q.one(root, "BkToCstmrStmt")
    if message is None:
        raise StatementError("no BkToCstmrStmt element: this is not a bank statement")
    statements = q.all(message, "Stmt")
    if not statements:
        raise StatementError("BkToCstmrStmt has no Stmt: the file holds no statement")
    accounts: set[str] = set()
    lines: list[Line] = []
    for s_index, stmt in enumerate(statements, start=1):
        where = f"Stmt {s_index}" + (f" ({q.text(stmt, 'Id')})" if q.text(stmt, "Id") else "")
        own = account(q.text(stmt, "Acct/Id/IBAN") or q.text(stmt, "Acct/Id/Othr/Id"), where)
        if own:
            accounts.add(own)
        booked = list(_entries(q, stmt, where))
        check_count(len(lines) + len(booked))
        _check_balances(q, stmt, where, booked)
        lines.extend(booked)
    if len(accounts) > 1:
        raise StatementError(f"the file holds statements of {len(accounts)} accounts ({', '.join(sorted(accounts))}): "
                             "import one account's statement at a time")
    if not lines:
        raise StatementError("the statement has no booked entries to import")
    return Statement("camt053", accounts.pop() if accounts else "", tuple(lines))


def _tree(data: bytes) -> ET.Element:
    try:
        return safexml.parse(data)
    except safexml.Refused as e:
        raise StatementError({
            "dtd": "the XML declares a DTD (<!DOCTYPE ...>), which a bank statement never has: it is refused "
                   "so that no entity in it is expanded and nothing it names is read",
            "entity": f"the XML declares an entity ({e.detail}): refused, a bank statement has none",
            "external": "the XML refers to an outside resource: refused, nothing is fetched",
            "refused": f"the XML is refused: {e.detail}",
            "broken": f"not well-formed XML at line {e.line}, column {e.column}: {e.detail}",
        }[e.kind]) from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class _Query:
    """Paths of local names in the document's namespace: ``"Acct/Id/IBAN"``."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self._paths: dict[str, str] = {}

    def _path(self, path: str) -> str:
        if path not in self._paths:
            self._paths[path] = "/".join(f"{{{self.ns}}}{part}" for part in path.split("/"))
        return self._paths[path]

    def one(self, el: ET.Element, path: str) -> ET.Element | None:
        return el.find(self._path(path))

    def all(self, el: ET.Element, path: str) -> list[ET.Element]:
        return el.findall(self._path(path))

    def text(self, el: ET.Element | None, path: str) -> str:
        if el is None:
            return ""
        found = el.find(self._path(path))
        return (found.text or "").strip() if found is not None else ""


def _money(q: _Query, el: ET.Element, path: str, where: str) -> tuple[Decimal, str] | None:
    amt = q.one(el, path)
    if amt is None:
        return None
    raw = (amt.text or "").strip()
    if not re.fullmatch(r"\d{1,14}(\.\d{1,5})?", raw):
        raise StatementError(f"{where}: {path} {raw!r} is not an amount")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise StatementError(f"{where}: {path} {raw!r} is not an amount") from None
    return amount(value, where), currency(amt.get("Ccy"), f"{where}, {path}/@Ccy")


def _sign(q: _Query, el: ET.Element, where: str) -> int:
    mark = q.text(el, "CdtDbtInd")
    if mark not in ("CRDT", "DBIT"):
        raise StatementError(f"{where}: CdtDbtInd {mark!r} is neither CRDT nor DBIT")
    return 1 if mark == "CRDT" else -1


def _date(q: _Query, el: ET.Element, path: str, where: str) -> dt.date | None:
    raw = q.text(el, f"{path}/Dt") or q.text(el, f"{path}/DtTm")[:10]
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw[:10])
    except ValueError:
        raise StatementError(f"{where}: {path} {raw!r} is not a date") from None


def _status(q: _Query, entry: ET.Element) -> str:
    """BOOK, PDNG, INFO: the text of ``Sts`` (versions 02-08) or of ``Sts/Cd`` (09 and later)."""
    return q.text(entry, "Sts/Cd") or q.text(entry, "Sts") or "BOOK"


def _entries(q: _Query, stmt: ET.Element, where: str) -> Iterator[Line]:
    for n, entry in enumerate(q.all(stmt, "Ntry"), start=1):
        ref = q.text(entry, "AcctSvcrRef") or q.text(entry, "NtryRef")
        at = f"{where}, Ntry {n}" + (f" ({ref})" if ref else "")
        if _status(q, entry) != "BOOK":
            continue
        money = _money(q, entry, "Amt", at)
        if money is None:
            raise StatementError(f"{at}: no Amt")
        value, code = money
        sign = _sign(q, entry, at)
        booked = _date(q, entry, "BookgDt", at) or _date(q, entry, "ValDt", at)
        if booked is None:
            raise StatementError(f"{at}: no booking date (BookgDt) nor value date (ValDt)")
        details = [tx for d in q.all(entry, "NtryDtls") for tx in q.all(d, "TxDtls")]
        extra = q.text(entry, "AddtlNtryInf")
        split = _split(q, details, value, code, at) if len(details) > 1 else None
        if split is not None:
            for i, (tx, tx_value) in enumerate(zip(details, split, strict=True), start=1):
                yield _line(q, tx, booked, sign * tx_value, code, sign, ref, extra, f"{at}, TxDtls {i}")
        else:
            # one transaction, or a batch whose parts do not each say their amount: one line,
            # the parts' parties and texts in its description
            one = details[0] if len(details) == 1 else None
            yield _line(q, one, booked, sign * value, code, sign, ref, extra, at, more=details if one is None else [])


def _split(q: _Query, details: list[ET.Element], total: Decimal, code: str, where: str) -> list[Decimal] | None:
    """A batch entry's transactions' amounts, when each gives one in the entry's currency and
    they add up to it; else None (the entry is one line)."""
    values = []
    for i, tx in enumerate(details, start=1):
        money = _money(q, tx, "AmtDtls/TxAmt/Amt", f"{where}, TxDtls {i}") or _money(q, tx, "Amt",
                                                                                      f"{where}, TxDtls {i}")
        if money is None or money[1] != code:
            return None
        values.append(money[0])
    return values if sum(values, Decimal(0)) == total else None


def _party(q: _Query, tx: ET.Element, role: str) -> tuple[str, str]:
    """(name, account) of the debtor or creditor of a transaction."""
    parties = q.one(tx, "RltdPties")
    if parties is None:
        return "", ""
    name = q.text(parties, f"{role}/Pty/Nm") or q.text(parties, f"{role}/Nm") \
        or q.text(parties, f"Ultmt{role}/Pty/Nm") or q.text(parties, f"Ultmt{role}/Nm")
    acct = q.text(parties, f"{role}Acct/Id/IBAN") or q.text(parties, f"{role}Acct/Id/Othr/Id")
    return name, acct


def _line(q: _Query, tx: ET.Element | None, booked: dt.date, value: Decimal, code: str, sign: int, entry_ref: str,
          extra: str, where: str, more: list[ET.Element] | None = None) -> Line:
    name = acct = reference = bank_ref = ""
    texts: list[str] = []
    for i, t in enumerate([tx, *(more or [])]):
        if t is None:
            continue
        n, a = _party(q, t, "Dbtr" if sign > 0 else "Cdtr")
        e2e = q.text(t, "Refs/EndToEndId")
        structured = q.text(t, "RmtInf/Strd/CdtrRefInf/Ref")
        if i == 0:
            name, acct = n, a
            reference = structured or (e2e if e2e.upper() != "NOTPROVIDED" else "")
            bank_ref = q.text(t, "Refs/AcctSvcrRef")
        elif n:
            texts.append(n)
        texts += [(u.text or "").strip() for u in q.all(t, "RmtInf/Ustrd")]
        if i > 0 and structured:
            texts.append(structured)
        texts.append(q.text(t, "AddtlTxInf"))
    texts.append(extra)
    return Line(
        booked_on=booked, amount=value, currency=code, payer_name=text(name, where), payer_account=account(acct, where),
        reference=text(reference, where), description=text(" ".join(t for t in texts if t), where),
        bank_ref=text(bank_ref or entry_ref, where))


def _check_balances(q: _Query, stmt: ET.Element, where: str, booked: list[Line]) -> None:
    opening = closing = None
    for b in q.all(stmt, "Bal"):
        kind = q.text(b, "Tp/CdOrPrtry/Cd")
        if kind in OPENING + CLOSING:
            money = _money(q, b, "Amt", f"{where}, Bal {kind}")
            if money is None:
                raise StatementError(f"{where}: the {kind} balance has no Amt")
            value = money[0] * _sign(q, b, f"{where}, Bal {kind}")
            if kind in OPENING:
                opening = value
            else:
                closing = value
    if opening is None or closing is None:
        return
    moved = sum((line.amount for line in booked), Decimal(0))
    if opening + moved != closing:
        raise StatementError(
            f"{where}: the opening balance {opening} and the booked entries ({moved:+}) do not make the closing "
            f"balance {closing}: the file is incomplete or altered")
