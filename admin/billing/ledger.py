"""The ledger's operations: issue documents, record payments, allocate, void, credit, explain.

Every function takes a connection inside a transaction and writes all or nothing of what it
does; the caller commits. A customer's ledger is written under its lock (store.lock_customers),
so what is open is read and allocated by one writer at a time. Nothing here updates or deletes a
financial row: a void reverses and releases, a credit note credits.

Document kinds and what they post:

- invoice: one debit per line (kind ``charge``, or ``fee``), the invoice carrying them;
- credit_note: one credit (kind ``credit_note``) of its total, allocated to its invoice first;
- receipt: one credit (kind ``payment``) of its total, allocated to the invoice it names first;
- proforma: nothing (no balance change, no tax point); paying it issues the tax invoice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.billing import allocation, money, store, taxes
from admin.billing.periods import Period

ONE = Decimal(1)
NO_TAX = taxes.TaxGroup("No tax")


class LedgerError(ValueError):
    """An operation the ledger refuses, said for the person who asked."""


@dataclass(frozen=True, slots=True)
class NewLine:
    """A line to issue: ``unit_price`` is net, or gross when ``inclusive``."""

    description: str
    unit_price: Decimal
    tax_group: taxes.TaxGroup = NO_TAX
    inclusive: bool = False
    quantity: Decimal = ONE
    unit: str = ""
    period: Period | None = None
    service_id: int | None = None
    item_id: int | None = None  # the next_invoice_items row it takes
    kind: str = "charge"  # an invoice line's transaction: charge or fee
    key: str | None = None  # its transaction's idempotency key (a run's (service, period))


@dataclass(frozen=True, slots=True)
class NewDocument:
    kind: str
    customer_id: int
    partner_id: int
    currency: str
    issued_on: dt.date
    origin: str
    lines: tuple[NewLine, ...]
    due_on: dt.date | None = None
    period: Period | None = None
    related_id: int | None = None
    run_id: int | None = None
    note: str = ""
    key: str | None = None
    by: str = ""


@dataclass(frozen=True, slots=True)
class Issued:
    id: int
    number: str
    total: Decimal
    transaction_ids: tuple[int, ...]


def group_of(row_taxes: Iterable[dict[str, Any]], name: str = "") -> taxes.TaxGroup:
    """The tax group a line's ``taxes`` JSON was priced with."""
    rates = tuple(taxes.TaxRate(t["name"], Decimal(t["percent"])) for t in row_taxes)
    return taxes.TaxGroup(name or " + ".join(r.name for r in rates) or NO_TAX.name, rates)


def _taxes_json(priced: taxes.LineAmounts) -> str:
    return json.dumps([{"name": t.rate.name, "percent": str(t.rate.percent), "amount": str(t.amount)}
                       for t in priced.taxes])


async def issue(conn: Connection, documents: Sequence[NewDocument]) -> list[Issued]:
    """Issue ``documents`` (priced here; numbered in the order given, gap-free) and post their
    transactions; COPY, so a run's thousands cost a few round trips. Documents whose ``key`` was
    issued already are skipped (their Issued is not returned)."""
    if not documents:
        return []
    keys = [d.key for d in documents if d.key is not None]
    if keys:
        done = await store.issued_keys(conn, keys)
        documents = [d for d in documents if d.key not in done]
        if not documents:
            return []
    settings = await store.settings(conn)
    numbers: dict[int, str] = {}
    by_series: dict[tuple[str, dt.date, int], list[int]] = defaultdict(list)  # (kind, date, partner): documents
    for i, d in enumerate(documents):
        by_series[(d.kind, d.issued_on, d.partner_id)].append(i)
    for (kind, on, partner_id), indexes in by_series.items():
        taken = await store.take_numbers(conn, kind, settings[store.PATTERNS[kind]], on, partner_id, len(indexes))
        numbers.update(zip(indexes, taken, strict=True))
    doc_ids = await store.reserve_ids(conn, "documents", len(documents))
    posts = sum(len(d.lines) if d.kind == "invoice" else 1 if d.kind in ("credit_note", "receipt") else 0
                for d in documents)
    tx_ids = iter(await store.reserve_ids(conn, "transactions", posts) if posts else [])
    doc_rows: list[tuple[Any, ...]] = []
    line_rows: list[tuple[Any, ...]] = []
    tx_rows: list[tuple[Any, ...]] = []
    item_rows: list[tuple[Any, ...]] = []
    issued: list[Issued] = []
    for i, d in enumerate(documents):
        doc_id = doc_ids[i]
        priced, totals = taxes.price_document(
            (taxes.DocumentLine(line.description, line.quantity, line.unit_price, line.tax_group, line.inclusive,
                                d.currency) for line in d.lines), d.currency)
        if totals.gross < 0:
            raise LedgerError(f"a {d.kind} cannot total less than zero ({totals.gross} {d.currency}): "
                              "credit the difference with a credit note")
        period = d.period
        doc_rows.append((doc_id, d.kind, d.customer_id, d.partner_id, numbers[i], d.issued_on, d.due_on,
                         period.start if period else None, period.end if period else None, d.currency, totals.net,
                         totals.tax, totals.gross, d.origin, d.related_id, d.run_id, d.note, d.key, d.by))
        posted: list[int] = []
        if d.kind in ("credit_note", "receipt") and totals.gross > 0:
            credit_id = next(tx_ids)
            posted.append(credit_id)
            kind = "credit_note" if d.kind == "credit_note" else "payment"
            what = "Credit note" if d.kind == "credit_note" else "Payment"
            # A payment for a service and a period carries them to its credit (allocation.py pays
            # that service's charges for the period first).
            named = d.lines[0] if d.kind == "receipt" else None
            np = named.period if named is not None else None
            tx_rows.append((credit_id, d.customer_id, "credit", kind, totals.gross, d.currency, d.issued_on,
                            f"{what} {numbers[i]}", named.service_id if named is not None else None,
                            np.start if np else None, np.end if np else None, doc_id, None,
                            d.key and f"{d.key}:post", d.by))
        elif d.kind in ("credit_note", "receipt"):
            next(tx_ids)  # reserved for a zero total: nothing to post
        for position, (line, amounts) in enumerate(zip(d.lines, priced, strict=True), start=1):
            tx_id: int | None = None
            if d.kind == "invoice" and amounts.gross > 0:
                tx_id = next(tx_ids)
                posted.append(tx_id)
                lp = line.period
                tx_rows.append((tx_id, d.customer_id, "debit", line.kind, amounts.gross, d.currency, d.issued_on,
                                line.description, line.service_id, lp.start if lp else None, lp.end if lp else None,
                                doc_id, None, line.key, d.by))
            elif d.kind == "invoice":
                next(tx_ids)
            lp = line.period
            line_rows.append((doc_id, position, line.description, lp.start if lp else None, lp.end if lp else None,
                              line.quantity, line.unit, line.unit_price, amounts.net, amounts.tax, amounts.gross,
                              _taxes_json(amounts), line.service_id, tx_id))
            if line.item_id is not None:
                item_rows.append((line.item_id, doc_id, position))
        issued.append(Issued(doc_id, numbers[i], totals.gross, tuple(posted)))
    await store.copy(conn, "documents", store.DOCUMENT_COLUMNS, doc_rows)
    await store.copy(conn, "transactions", store.TRANSACTION_COLUMNS, tx_rows)
    await store.insert_lines(conn, line_rows)
    await store.copy(conn, "document_line_items", ("item_id", "document_id", "position"), item_rows)
    return issued


async def allocate(conn: Connection, customer_ids: Sequence[int], by: str = "") -> int:
    """Apply what these customers have in credit to what they owe (admin/billing/allocation.py's
    order: a credit's own target first, then debits on no invoice, then invoices, oldest first).
    The caller holds their ledger locks. Returns the number of allocations made."""
    credits_rows = await store.open_credits(conn, customer_ids)
    if not credits_rows:
        return 0
    debts_rows = await store.open_debts(conn, [r["customer_id"] for r in credits_rows])
    currency = await store.currencies(conn, list({r["customer_id"] for r in credits_rows}))
    credits: dict[int, list[allocation.Credit]] = defaultdict(list)
    for r in credits_rows:
        kind = allocation.CreditKind.CREDIT_NOTE if r["kind"] == "credit_note" else allocation.CreditKind.PAYMENT
        target = (allocation.DebtKind.INVOICE, r["related_id"]) if r["related_id"] is not None else None
        period = Period(r["period_start"], r["period_end"]) if r["period_start"] is not None else None
        credits[r["customer_id"]].append(allocation.Credit(kind, r["id"], r["posted_on"], Decimal(r["rest"]),
                                                           r["service_id"], period, target))
    debts: dict[int, list[allocation.Debt]] = defaultdict(list)
    for r in debts_rows:
        period = Period(r["period_start"], r["period_end"]) if r["period_start"] is not None else None
        debts[r["customer_id"]].append(allocation.Debt(allocation.DebtKind(r["kind"]), r["id"], r["on"],
                                                       Decimal(r["rest"]), r["service_id"], period))
    rows: list[tuple[Any, ...]] = []
    for customer_id, its_credits in credits.items():
        if not debts.get(customer_id):
            continue
        result = allocation.allocate(its_credits, debts[customer_id], currency[customer_id])
        for a in result.allocations:
            target_tx = a.target[1] if a.target[0] is allocation.DebtKind.TRANSACTION else None
            target_doc = a.target[1] if a.target[0] is allocation.DebtKind.INVOICE else None
            rows.append((customer_id, a.source[1], target_tx, target_doc, a.amount, None, by))
    await store.copy(conn, "allocations", store.ALLOCATION_COLUMNS, rows)
    return len(rows)


async def _customer(conn: Connection, customer_id: int) -> asyncpg.Record:
    row = await store.customer(conn, customer_id)
    if row is None:
        raise LedgerError(f"customer {customer_id} does not exist")
    return row


def _amount(value: object, currency: str, what: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise LedgerError(f"{what} must be an amount, not {value!r}")
    rounded = money.quantize(value, currency)
    if rounded != value:
        raise LedgerError(f"{what} {value} has more decimals than {currency} has ({money.digits(currency)})")
    if value <= 0:
        raise LedgerError(f"{what} must be more than zero, not {value}")
    return rounded


async def record_payment(conn: Connection, customer_id: int, amount: Decimal, on: dt.date, *, method: str,
                         reference: str = "", by: str = "", document_id: int | None = None,
                         idempotency_key: str | None = None, service_id: int | None = None,
                         period: Period | None = None) -> int:
    """A payment received: a receipt and its credit, allocated (to ``document_id`` first when
    given, or to the charges of ``service_id`` for ``period``, then oldest first). The same
    ``idempotency_key`` again returns the first payment's transaction id and writes nothing. A
    proforma named as ``document_id`` is answered with its tax invoice, issued now, which the
    payment then pays."""
    if idempotency_key is not None:
        done = await store.transaction_by_key(conn, f"{idempotency_key}:post")
        if done is not None:
            return int(done["id"])
    c = await _customer(conn, customer_id)
    await store.lock_customers(conn, [customer_id])
    amount = _amount(amount, c["currency"], "a payment")
    if not method.strip():
        raise LedgerError("a payment needs its method (cash, bank transfer, card, ...)")
    target = None
    if document_id is not None:
        target = await store.document(conn, document_id)
        if target is None or target["customer_id"] != customer_id:
            raise LedgerError(f"document {document_id} is not one of this customer's")
        if target["status"] == "void":
            raise LedgerError(f"{target['number']} is void")
        if target["kind"] == "proforma":
            target = await _tax_invoice_for(conn, target, on, by)
        elif target["kind"] != "invoice":
            raise LedgerError(f"a payment pays an invoice, not a {target['kind']}")
    text = " ".join(part for part in (method.strip(), reference.strip()) if part)
    receipt = NewDocument(
        kind="receipt", customer_id=customer_id, partner_id=c["partner_id"], currency=c["currency"], issued_on=on,
        origin="payment", lines=(NewLine(f"Payment: {text}", amount, period=period, service_id=service_id),),
        related_id=target["id"] if target is not None else None, key=idempotency_key, by=by,
        note=reference.strip())
    issued = await issue(conn, [receipt])
    await allocate(conn, [customer_id], by)
    return issued[0].transaction_ids[0]


async def _tax_invoice_for(conn: Connection, proforma: asyncpg.Record, on: dt.date, by: str) -> asyncpg.Record:
    """The tax invoice of a proforma (issued now with its lines, once)."""
    existing = await store.tax_invoice_of(conn, proforma["id"])
    if existing is None:
        lines = await store.document_lines(conn, proforma["id"])
        doc = NewDocument(
            kind="invoice", customer_id=proforma["customer_id"], partner_id=proforma["partner_id"],
            currency=proforma["currency"], issued_on=on, origin="proforma", due_on=on,
            lines=tuple(_line_from(row, charge=True) for row in lines), related_id=proforma["id"],
            period=Period(proforma["period_start"], proforma["period_end"]) if proforma["period_start"] else None,
            key=f"tax-invoice:{proforma['id']}", by=by)
        try:
            async with conn.transaction():
                issued = await issue(conn, [doc])
        except asyncpg.UniqueViolationError:
            raise LedgerError(f"the periods of proforma {proforma['number']} were invoiced meanwhile: record the "
                              "payment without naming the proforma") from None
        existing_id = issued[0].id
    else:
        existing_id = existing
    row = await store.document(conn, existing_id)
    assert row is not None
    return row


def _line_from(row: asyncpg.Record, gross: Decimal | None = None, prefix: str = "", *, charge: bool = False) -> NewLine:
    """A new line priced as an issued one was (its taxes, inclusive of them), for ``gross``;
    ``charge``: a service's period charged by it (keyed as a run's charge, so no run bills it again)."""
    group = group_of(row["taxes"])
    period = Period(row["period_start"], row["period_end"]) if row["period_start"] else None
    key = (f"charge:{row['service_id']}:{period.start.isoformat()}"
           if charge and period is not None and row["service_id"] is not None else None)
    return NewLine(prefix + row["description"], row["gross"] if gross is None else gross, group, inclusive=True,
                   period=period, service_id=row["service_id"], key=key)


async def void_document(conn: Connection, document_id: int, reason: str, by: str = "") -> None:
    """Make a document void: an invoice's debits are reversed and what paid it is released (and
    allocated again, oldest first); a credit note or receipt only while nothing of it is
    allocated; a proforma at any time before it is paid."""
    if not reason.strip():
        raise LedgerError("say why the document is void")
    doc = await store.document(conn, document_id)
    if doc is None:
        raise LedgerError(f"document {document_id} does not exist")
    await store.lock_customers(conn, [doc["customer_id"]])
    if doc["status"] == "void":
        raise LedgerError(f"{doc['number']} is void already")
    if doc["kind"] == "proforma" and doc["status"] == "paid":
        raise LedgerError(f"proforma {doc['number']} is paid: void its tax invoice instead")
    if doc["kind"] in ("credit_note", "receipt") and await store.allocated_from(conn, document_id):
        raise LedgerError(f"{doc['number']} was applied to what the customer owed; void that invoice first")
    posted = await store.unreversed_posts(conn, document_id)
    ids = await store.reserve_ids(conn, "transactions", len(posted)) if posted else []
    today = dt.datetime.now(dt.UTC).date()
    await store.copy(conn, "transactions", store.TRANSACTION_COLUMNS, [
        (tx_id, t["customer_id"], "credit" if t["direction"] == "debit" else "debit", "reversal", t["amount"],
         t["currency"], max(today, t["posted_on"]), f"Void {doc['number']}: {t['description']}", t["service_id"],
         t["period_start"], t["period_end"], None, t["id"], None, by)
        for tx_id, t in zip(ids, posted, strict=True)])
    live = await store.live_allocations_to(conn, document_id)
    await store.copy(conn, "allocations", store.ALLOCATION_COLUMNS, [
        (a["customer_id"], a["credit_id"], None, document_id, -a["amount"], a["id"], by) for a in live])
    await store.insert_void(conn, document_id, by, reason.strip())
    await allocate(conn, [doc["customer_id"]], by)


async def reverse_payment(conn: Connection, receipt_id: int, reason: str, by: str = "") -> None:
    """Take a payment back (a cheque that bounced, a card charge refunded, a payment entered by
    mistake): what it paid is released, its credit reversed, its receipt void; the customer's
    other credits are then allocated again, so the debts it paid are open once more unless
    something else pays them."""
    if not reason.strip():
        raise LedgerError("say why the payment is taken back")
    doc = await store.document(conn, receipt_id)
    if doc is None or doc["kind"] != "receipt":
        raise LedgerError(f"document {receipt_id} is not a payment's receipt")
    await store.lock_customers(conn, [doc["customer_id"]])
    if doc["status"] == "void":
        raise LedgerError(f"the payment of {doc['number']} was taken back already")
    posted = await store.unreversed_posts(conn, receipt_id)
    live = await store.live_allocations_from(conn, [t["id"] for t in posted])
    await store.copy(conn, "allocations", store.ALLOCATION_COLUMNS, [
        (a["customer_id"], a["credit_id"], a["target_transaction_id"], a["target_document_id"], -a["amount"], a["id"],
         by) for a in live])
    ids = await store.reserve_ids(conn, "transactions", len(posted)) if posted else []
    today = dt.datetime.now(dt.UTC).date()
    await store.copy(conn, "transactions", store.TRANSACTION_COLUMNS, [
        (tx_id, t["customer_id"], "debit", "reversal", t["amount"], t["currency"], max(today, t["posted_on"]),
         f"Taken back {doc['number']}: {reason.strip()}", t["service_id"], t["period_start"], t["period_end"], None,
         t["id"], None, by)
        for tx_id, t in zip(ids, posted, strict=True)])
    await store.insert_void(conn, receipt_id, by, reason.strip())
    await allocate(conn, [doc["customer_id"]], by)


async def credit_note(conn: Connection, invoice_id: int, reason: str, by: str = "", amount: Decimal | None = None,
                      on: dt.date | None = None) -> int:
    """A credit note for an invoice: all of it (its lines, credited), or ``amount`` of it (split
    over its lines by their grosses, so each part keeps its line's taxes). Returns its id."""
    if not reason.strip():
        raise LedgerError("say why the invoice is credited")
    invoice = await store.document(conn, invoice_id)
    if invoice is None or invoice["kind"] != "invoice":
        raise LedgerError(f"invoice {invoice_id} does not exist")
    if invoice["status"] == "void":
        raise LedgerError(f"{invoice['number']} is void: there is nothing to credit")
    await store.lock_customers(conn, [invoice["customer_id"]])
    credited = await store.credited(conn, invoice_id)
    left = invoice["total"] - credited
    wanted = left if amount is None else _amount(amount, invoice["currency"], "a credit")
    if wanted > left or wanted <= 0:
        raise LedgerError(f"{invoice['number']} has {left} {invoice['currency']} left to credit, not {wanted}")
    rows = [r for r in await store.document_lines(conn, invoice_id) if r["gross"] > 0]
    parts = taxes.split_proportionally(wanted, [r["gross"] for r in rows], invoice["currency"])
    lines = tuple(_line_from(r, part, "Credit: ") for r, part in zip(rows, parts, strict=True) if part > 0)
    doc = NewDocument(
        kind="credit_note", customer_id=invoice["customer_id"], partner_id=invoice["partner_id"],
        currency=invoice["currency"], issued_on=on or dt.datetime.now(dt.UTC).date(), origin="manual", lines=lines,
        related_id=invoice_id, note=reason.strip(), by=by)
    issued = await issue(conn, [doc])
    await allocate(conn, [invoice["customer_id"]], by)
    return issued[0].id


async def add_next_invoice_item(conn: Connection, customer_id: int, description: str, quantity: Decimal,
                                unit_price: Decimal, by: str = "", service_id: int | None = None,
                                tax_group_id: int | None = None, price_includes_tax: bool = False) -> int:
    """An item for the customer's next invoice (a one-time charge): billed by the next run."""
    c = await _customer(conn, customer_id)
    if not description.strip():
        raise LedgerError("an item needs a description")
    if quantity <= 0 or unit_price < 0:
        raise LedgerError("an item needs a quantity above zero and a price of zero or more")
    return await store.insert_next_item(conn, customer_id, service_id, description.strip(), quantity, unit_price,
                                        price_includes_tax, tax_group_id, c["currency"], by)


@dataclass(frozen=True, slots=True)
class Entry:
    on: dt.date
    description: str
    document: str | None
    debit: Decimal
    credit: Decimal
    balance: Decimal
    period: Period | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    customer_id: int
    currency: str
    entries: tuple[Entry, ...] = field(default_factory=tuple)

    @property
    def balance(self) -> Decimal:
        return self.entries[-1].balance if self.entries else Decimal(0)


async def statement(conn: Connection, customer_id: int) -> Statement:
    """The walk from zero to today's balance, entry by entry: every transaction with the balance
    after it (credits raise it, debits lower it)."""
    c = await _customer(conn, customer_id)
    running = money.quantize(Decimal(0), c["currency"])
    entries: list[Entry] = []
    for t in await store.ledger(conn, customer_id):
        debit = t["amount"] if t["direction"] == "debit" else Decimal(0)
        credit = t["amount"] if t["direction"] == "credit" else Decimal(0)
        running = running + credit - debit
        period = Period(t["period_start"], t["period_end"]) if t["period_start"] is not None else None
        entries.append(Entry(t["posted_on"], t["description"], t["document_number"], debit, credit, running, period))
    return Statement(customer_id, c["currency"], tuple(entries))
