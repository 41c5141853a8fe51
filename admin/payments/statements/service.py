"""Importing a statement, and a person's pairing or ignoring of a line.

:func:`import_file` reads the file (refused whole when any of it does not read), leaves out the
lines an earlier statement had (by their hash), matches the rest (admin/payments/matching.py,
loading what it needs in a few statements for the whole file) and records the matched lines'
payments (admin/payments/bulk.py), all in ONE transaction: the statement, its lines and its
payments commit together or not at all. The same file again is refused ("already imported as
statement N"); an overlapping statement adds only the lines that are new.

:func:`pair` records the payment of a line a person placed (admin/payments/record.py, named by
the line, so a second pairing of it records nothing) and :func:`ignore` sets one aside with
the reason. Both run in the caller's transaction, with the line locked.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.billing import collect
from admin.billing import store as billing_store
from admin.payments import bulk, matching, matching_store, record
from admin.payments.record import NewPayment, PaymentError
from admin.payments.statements import csvfile, model, store
from admin.payments.statements.model import Line, StatementError
from admin.payments.statements.read import read

TYPE_CODE = "bank_transfer"


class AlreadyImported(StatementError):
    def __init__(self, statement_id: int) -> None:
        super().__init__(f"this file was imported already, as statement {statement_id}")
        self.statement_id = statement_id


class LineError(ValueError):
    """A pairing or ignoring refused (the line's state does not allow it), said for the person."""


@dataclass(slots=True)
class Imported:
    statement_id: int
    lines: int                         # in the file
    duplicates: int                    # of them known already
    counts: dict[str, int]             # new lines by status
    payments: int                      # recorded
    dunning: dict[str, int]            # what dunning did after them
    timings: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{n} {status}" for status, n in sorted(self.counts.items()) if n]
        known = f", {self.duplicates} known already" if self.duplicates else ""
        moved = ", ".join(f"{n} {a}" for a, n in sorted(self.dunning.items()))
        return (f"statement {self.statement_id}: {self.lines} lines{known}; " + (", ".join(parts) or "nothing new")
                + f"; {self.payments} payments recorded" + (f"; dunning: {moved}" if moved else ""))


def mapping_of(row: asyncpg.Record | dict[str, Any], currency: str) -> csvfile.Mapping:
    """A bank_mappings row as the CSV reader takes it (``currency``: the lines' when no column says)."""
    raw = row["columns"]
    columns = json.loads(raw) if isinstance(raw, str) else raw
    return csvfile.Mapping(
        {k: tuple(v) if isinstance(v, list) else (int(v),) for k, v in columns.items()}, row["delimiter"],
        row["encoding"], row["skip_lines"], row["has_header"], row["date_format"], row["decimal_comma"], currency,
        row["name"])


def columns_json(columns: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """A mapping's columns as bank_mappings keeps them: one number, or a list for the joined fields."""
    return {k: (list(v) if k in csvfile.JOINED else v[0]) for k, v in sorted(columns.items()) if v}


def _line_in(line: Line) -> matching.LineIn:
    return matching.LineIn(line.amount, line.currency, line.payer_name, line.payer_account, line.reference,
                           line.description)


async def match(conn: Connection, lines: Sequence[matching.LineIn],
                timings: dict[str, float] | None = None) -> list[matching.Outcome]:
    """Every line's outcome, from what a handful of statements load for all of them."""
    clock = _Clock(timings if timings is not None else {})
    want = matching.wanted(lines)
    known = matching.Known()
    known.documents = await matching_store.documents(conn, want.numbers)
    known.accounts = await matching_store.accounts(conn, want.accounts)
    ids = set(want.customer_ids) | {d.customer_id for docs in known.documents.values() for d in docs}
    ids |= {cid for owners in known.accounts.values() for cid in owners}
    known.customers = await matching_store.customers(conn, ids)
    clock.lap("match: references, documents, accounts")
    if any(line.amount > 0 and line.payer_name and not matching.placed(line, known) for line in lines):
        for row in await matching_store.names(conn):
            known.by_words.setdefault(matching.name_words(row["name"]), []).append(row["id"])
        known.customers.update(await matching_store.customers(conn, matching.named_by(lines, known)
                                                              - set(known.customers)))
    clock.lap("match: names")
    known.open_invoices = await matching_store.open_invoices(conn, known.customers)
    clock.lap("match: open invoices")
    outcomes = matching.decide_all(lines, known)
    clock.lap("match: decide")
    return outcomes


class _Clock:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, what: str) -> None:
        now = time.perf_counter()
        self.timings[what] = self.timings.get(what, 0.0) + now - self.last
        self.last = now


async def import_file(conn: Connection, data: bytes, file_name: str, *, mapping: asyncpg.Record | None, by: str,
                      today: dt.date | None = None) -> Imported:
    """Read, match and record a statement file (see the module's doc); StatementError when the
    file is refused (AlreadyImported when it was imported before), nothing written then."""
    timings: dict[str, float] = {}
    clock = _Clock(timings)
    sha = model.file_sha256(data)
    if (first := await store.statement_by_file(conn, sha)) is not None:
        raise AlreadyImported(first)
    currency = await store.billing_currency(conn)
    statement = read(data, mapping_of(mapping, currency) if mapping is not None else None)
    hashes = model.line_hashes(statement)
    clock.lap("read")
    try:
        async with conn.transaction():
            imported = await _import(conn, statement, hashes, sha, file_name, mapping, by, today, timings)
    except asyncpg.UniqueViolationError as e:  # the same file, imported by another request meanwhile
        if e.constraint_name != "bank_statements_file_unique":
            raise
        again = await store.statement_by_file(conn, sha)
        raise AlreadyImported(again or 0) from None
    timings["total"] = sum(timings.values())
    return imported


async def _import(conn: Connection, statement: model.Statement, hashes: list[str], sha: str, file_name: str,
                  mapping: asyncpg.Record | None, by: str, today: dt.date | None,
                  timings: dict[str, float]) -> Imported:
    clock = _Clock(timings)
    statement_id = await store.insert_statement(conn, file_name, statement.format,
                                                mapping["id"] if mapping is not None else None, sha,
                                                statement.account, len(statement.lines), by)
    known = await store.known_hashes(conn, hashes)
    fresh = [(position, line, h) for position, (line, h) in enumerate(zip(statement.lines, hashes, strict=True),
                                                                       start=1) if h not in known]
    clock.lap("known lines")
    outcomes = await match(conn, [_line_in(line) for _, line, _ in fresh], timings)
    clock.last = time.perf_counter()
    rows = []
    for (position, line, h), o in zip(fresh, outcomes, strict=True):
        rows.append((statement_id, h, position, line.booked_on, line.amount, line.currency, line.payer_name,
                     line.payer_account, line.reference, line.description, line.bank_ref, o.status, o.customer_id,
                     o.document_id, o.score, json.dumps([s.as_json() for s in o.explanation]), o.error))
    ids = await store.insert_lines(conn, rows)
    clock.lap("store lines")
    payments = []
    for (position, line, _), o in zip(fresh, outcomes, strict=True):
        if o.status == "matched" and position in ids:
            assert o.customer_id is not None
            payments.append(_payment(line, o.customer_id, o.document_id, ids[position], statement_id, position, by))
    batch = await bulk.record_many(conn, payments, dunning=False, today=today) if payments else bulk.Batch([], None)
    errors = {p.statement_line_id: str(r) for p, r in zip(payments, batch.results, strict=True)
              if isinstance(r, PaymentError) and p.statement_line_id is not None}
    await store.set_errors(conn, errors)
    clock.lap("record payments")
    paid = sorted({p.customer_id for p, r in zip(payments, batch.results, strict=True)
                   if isinstance(r, record.Recorded) and r.created})
    dunning = await collect.run(conn, today or dt.datetime.now(dt.UTC).date(), paid) if paid else None
    clock.lap("dunning")
    duplicates = len(statement.lines) - len(ids)
    await store.set_duplicates(conn, statement_id, duplicates)
    counts: dict[str, int] = {}
    for (position, _, _), o in zip(fresh, outcomes, strict=True):
        if position in ids:
            status = "error" if ids[position] in errors else o.status
            counts[status] = counts.get(status, 0) + 1
    return Imported(statement_id, len(statement.lines), duplicates, counts, batch.created,
                    dict(dunning.actions) if dunning else {}, timings)


def _payment(line: Line, customer_id: int, document_id: int | None, line_id: int, statement_id: int, position: int,
             by: str) -> NewPayment:
    said = line.reference or line.description
    comment = f"bank statement {statement_id}, line {position}" + (f": {said}" if said else "")
    return NewPayment(customer_id, line.amount, line.booked_on, TYPE_CODE, source="bank_statement",
                      receipt_number=line.bank_ref[:100], payer=line.payer_name[:200], comment=comment[:500],
                      document_id=document_id, statement_line_id=line_id, by=by)


# -- a person's decisions -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Paired:
    line_id: int
    customer_id: int
    recorded: record.Recorded


async def pair(conn: Connection, line_id: int, customer_id: int, document_id: int | None, by: str,
               today: dt.date | None = None) -> Paired:
    """Record the payment of line ``line_id`` as customer ``customer_id``'s (paying
    ``document_id`` first, when given); LineError when the line cannot be paired, PaymentError
    when the payment is refused. A line paired already with this customer answers as before."""
    async with conn.transaction():
        row = await store.line(conn, line_id, lock=True)
        if row is None:
            raise LineError(f"no statement line {line_id}")
        if row["status"] == "paired" and row["customer_id"] == customer_id and row["payment_id"] is not None:
            done = await record.record(conn, _payment(_line_of(row), customer_id, row["document_id"], line_id,
                                                      row["statement_id"], row["position"], by), today=today)
            return Paired(line_id, customer_id, done)
        if row["status"] not in ("new", "error", "ignored"):
            raise LineError(f"line {row['position']} of statement {row['statement_id']} is {row['status']} already")
        if Decimal(row["amount"]) <= 0:
            raise LineError("money out (a debit) is not a payment: there is nothing to pair")
        billed = (await billing_store.currencies(conn, [customer_id])).get(customer_id)
        if billed is not None and billed != row["currency"]:
            raise LineError(f"the line is in {row['currency']}, the customer is billed in {billed}")
        done = await record.record(conn, _payment(_line_of(row), customer_id, document_id, line_id,
                                                  row["statement_id"], row["position"], by), today=today)
        await store.pair(conn, line_id, customer_id, document_id,
                         {"signal": "paired", "points": 0, "detail": f"paired by {by}"})
    return Paired(line_id, customer_id, done)


def _line_of(row: asyncpg.Record) -> Line:
    return Line(row["booked_on"], Decimal(row["amount"]), row["currency"], row["payer_name"], row["payer_account"],
                row["reference"], row["description"], row["bank_ref"])


async def ignore(conn: Connection, line_id: int, reason: str, by: str) -> asyncpg.Record:
    """Set a line aside (nobody's payment: a refund, a transfer between own accounts); the line as it was."""
    async with conn.transaction():
        row = await store.line(conn, line_id, lock=True)
        if row is None:
            raise LineError(f"no statement line {line_id}")
        if row["status"] not in ("new", "error"):
            raise LineError(f"line {row['position']} of statement {row['statement_id']} is {row['status']}: only a "
                            "line waiting for a person is ignored")
        await store.ignore(conn, line_id, {"signal": "ignored", "points": 0, "detail": f"ignored by {by}: {reason}"})
    return row
