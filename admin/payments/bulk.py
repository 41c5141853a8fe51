"""Record many payments at once: the rows :func:`admin.payments.record.record` writes for each,
written for all of them in a few statements, for a bank statement's thousands of lines.

:func:`record.record` costs some twenty statements a payment (and dunning's look at the whole
ledger after each), which is a minute for a 10,000-line statement. Here the same receipts and
credits are issued together (ledger.issue numbers them in the order given, as one after the
other would be), allocated together (ledger.allocate, per customer by the ledger's rules), the
``payments`` rows written in one statement, and dunning looks at the customers paid once, in
the same transaction. tests/db/test_payments_statements.py holds the two ways to the same rows.

What is refused is refused as record.record refuses it (a customer, type, amount or document it
would not take), payment by payment: a refused one is returned as its :class:`PaymentError`
with nothing of it written, the others are recorded. A payment that names more than its
statement line (an idempotency key, a gateway's id, a collection, a service and period) or a
proforma (whose tax invoice is issued as it is paid) goes through record.record itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from admin.auth.store import Connection
from admin.billing import collect, ledger, money
from admin.billing import store as billing_store
from admin.payments import bulk_store, record, store
from admin.payments.record import NewPayment, PaymentError, Recorded


@dataclass(frozen=True, slots=True)
class Batch:
    results: list[Recorded | PaymentError]     # one per payment given, in order
    dunning: collect.DunningSummary | None      # what dunning did after them

    @property
    def created(self) -> int:
        return sum(1 for r in self.results if isinstance(r, Recorded) and r.created)


def _simple(p: NewPayment) -> bool:
    """Named by its statement line alone, paying no period: the payments recorded here."""
    return (p.statement_line_id is not None and p.key is None and p.gateway is None and p.gateway_ref is None
            and p.collection_id is None and p.service_id is None and p.period is None)


async def record_many(conn: Connection, payments: Sequence[NewPayment], *, dunning: bool = True,
                      today: dt.date | None = None) -> Batch:
    """Record ``payments`` in the caller's transaction (or one of its own); see the module's doc."""
    results: list[Recorded | PaymentError | None] = [None] * len(payments)
    async with conn.transaction():
        customer_ids = sorted({p.customer_id for p in payments})
        await billing_store.lock_customers(conn, customer_ids)
        customers = await bulk_store.customers(conn, customer_ids)
        kinds = {code: await store.payment_type(conn, code) for code in sorted({p.type_code for p in payments})}
        known = await bulk_store.known_lines(conn, [p.statement_line_id for p in payments if _simple(p)
                                                    and p.statement_line_id is not None])
        documents = await bulk_store.documents(conn, [p.document_id for p in payments if p.document_id is not None])
        receipts: list[ledger.NewDocument] = []
        planned: list[int] = []     # index of the payment of each receipt
        singles: list[int] = []
        for i, p in enumerate(payments):
            if not _simple(p):
                singles.append(i)
                continue
            assert p.statement_line_id is not None
            first = known.get(p.statement_line_id)
            if first is not None:
                if first["customer_id"] != p.customer_id or first["amount"] != p.amount:
                    results[i] = PaymentError(f"this payment was recorded already (receipt {first['receipt_no']}) "
                                              "for another customer or amount")
                else:
                    results[i] = Recorded(first["id"], first["receipt_id"], first["receipt_no"],
                                          first["transaction_id"], False)
                continue
            refused = _refusal(p, customers, kinds, documents)
            if refused is not None:
                results[i] = refused
                continue
            if p.document_id is not None and documents[p.document_id]["kind"] == "proforma":
                singles.append(i)
                continue
            c, kind = customers[p.customer_id], kinds[p.type_code]
            assert kind is not None
            reference = p.receipt_number.strip()
            text = " ".join(part for part in (kind["name"].strip(), reference) if part)
            receipts.append(ledger.NewDocument(
                kind="receipt", customer_id=p.customer_id, partner_id=c["partner_id"], currency=c["currency"],
                issued_on=p.paid_on, origin="payment", lines=(ledger.NewLine(f"Payment: {text}", p.amount),),
                related_id=p.document_id, key=record._ledger_key(p), by=p.by, note=reference))  # record.py's key
            planned.append(i)
        # a receipt issued before under the same key (another way recorded it): record.record finds it
        before = await billing_store.issued_keys(conn, [r.key for r in receipts if r.key is not None])
        singles += [i for r, i in zip(receipts, planned, strict=True) if r.key in before]
        planned = [i for r, i in zip(receipts, planned, strict=True) if r.key not in before]
        receipts = [r for r in receipts if r.key not in before]
        issued = await ledger.issue(conn, receipts)
        rows = []
        for doc, i in zip(issued, planned, strict=True):
            p, c = payments[i], customers[payments[i].customer_id]
            kind = kinds[p.type_code]
            assert kind is not None
            rows.append((i, doc, {
                "customer_id": p.customer_id, "transaction_id": doc.transaction_ids[0], "receipt_id": doc.id,
                "type_id": kind["id"], "source": p.source, "paid_on": p.paid_on, "amount": p.amount,
                "currency": c["currency"], "receipt_number": p.receipt_number.strip(), "payer": p.payer.strip(),
                "comment": p.comment.strip(), "document_id": p.document_id, "service_id": None, "period_start": None,
                "period_end": None, "gateway": None, "gateway_ref": None, "intent_id": p.intent_id,
                "statement_line_id": p.statement_line_id, "collection_id": None, "idempotency_key": None,
                "created_by": p.by}))
        if rows:
            by = {payments[i].by for i, _, _ in rows}
            for who in sorted(by):
                await ledger.allocate(conn, sorted({payments[i].customer_id for i, _, _ in rows
                                                    if payments[i].by == who}), who)
            ids = await bulk_store.insert_payments(conn, [values for _, _, values in rows])
            for i, doc, _ in rows:
                results[i] = Recorded(ids[doc.transaction_ids[0]], doc.id, doc.number, doc.transaction_ids[0], True)
        for i in sorted(singles):
            try:
                results[i] = await record.record(conn, payments[i], dunning=False, today=today)
            except PaymentError as e:
                results[i] = e
        summary = None
        paid = sorted({payments[i].customer_id for i, r in enumerate(results) if isinstance(r, Recorded) and r.created})
        if dunning and paid:
            summary = await collect.run(conn, today or dt.datetime.now(dt.UTC).date(), paid)
    done = [r for r in results if r is not None]
    assert len(done) == len(payments)
    return Batch(done, summary)


def _refusal(p: NewPayment, customers: dict[int, asyncpg.Record], kinds: dict[str, asyncpg.Record | None],
             documents: dict[int, asyncpg.Record]) -> PaymentError | None:
    """What record.record (and ledger.record_payment under it) would refuse of ``p``, said as it says it."""
    if p.source not in record.SOURCES:
        return PaymentError(f"unknown source {p.source!r}")
    c = customers.get(p.customer_id)
    if c is None:
        return PaymentError(f"customer {p.customer_id} does not exist")
    kind = kinds.get(p.type_code)
    if kind is None or not kind["enabled"]:
        return PaymentError(f"no payment type {p.type_code!r} (or it is disabled)")
    currency = c["currency"]
    if not p.amount.is_finite():
        return PaymentError(f"a payment must be an amount, not {p.amount!r}")
    if money.quantize(p.amount, currency) != p.amount:
        return PaymentError(f"a payment {p.amount} has more decimals than {currency} has ({money.digits(currency)})")
    if p.amount <= 0:
        return PaymentError(f"a payment must be more than zero, not {p.amount}")
    if p.document_id is not None:
        d = documents.get(p.document_id)
        if d is None or d["customer_id"] != p.customer_id:
            return PaymentError(f"document {p.document_id} is not one of this customer's")
        if d["void"]:
            return PaymentError(f"{d['number']} is void")
        if d["kind"] not in ("invoice", "proforma"):
            return PaymentError(f"a payment pays an invoice, not a {d['kind']}")
    return None
