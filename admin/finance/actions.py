"""The finance area's changes to the ledger, each in one transaction with its line of the
operations log: a payment by hand, a void, a credit note, an item for the next invoice. The
money moves in admin/billing/ledger.py; after a payment, a void or a credit note the customer's
dunning is looked at again (admin/billing/collect.py: a debt paid lets a customer that dunning
blocked back in).
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg
from aiohttp import web

from admin import keys, oplog_store, schemas
from admin.auth.store import Connection
from admin.billing import collect, ledger
from admin.finance import common, queries
from admin.finance.schemas import METHODS, CreditNoteIn, ItemIn, PaymentIn
from admin.payments import record


async def _dunning(conn: Connection, request: web.Request, customer: asyncpg.Record) -> None:
    """Dunning for this customer now; a status it changes goes into the operations log."""
    summary = await collect.run(conn, common.today(), [customer["id"]])
    if summary.actions:
        who = keys.principal(request)
        done = ", ".join(sorted(summary.actions))
        async with conn.transaction():
            await oplog_store.record(conn, who, keys.client_address(request), done, "customer", customer["id"],
                                     customer_id=customer["id"], partner_id=customer["partner_id"],
                                     summary=f"dunning after the change: {done}")


async def pay(conn: Connection, request: web.Request, customer: asyncpg.Record, data: PaymentIn, *,
              document: asyncpg.Record | None = None, key: str | None = None) -> int:
    """Record a payment of ``customer`` (to ``document`` first, when given) through
    admin/payments/record.py; the credit's transaction id. A ``key`` seen before records nothing
    and answers with the first payment."""
    who = keys.principal(request)
    value = common.amount(data.amount, customer["currency"], "amount")
    on = data.on or common.today()
    method = METHODS[data.method]
    async with conn.transaction():
        try:
            done = await record.record(conn, record.NewPayment(
                customer["id"], value, on, data.method, source="api" if who.api_key_id is not None else "desk",
                receipt_number=data.reference, document_id=document["id"] if document is not None else None,
                key=key, by=who.name), today=common.today())
        except record.PaymentError as e:
            raise ledger.LedgerError(str(e)) from None
        if not done.created:
            return done.transaction_id
        what = f" for {document['number']}" if document is not None else ""
        await oplog_store.record(
            conn, who, keys.client_address(request), "payment", "document", done.receipt_id,
            customer_id=customer["id"], partner_id=customer["partner_id"],
            summary=f"payment of {value} {customer['currency']} ({method}){what}: receipt {done.receipt_number}",
            after={"amount": str(value), "on": on.isoformat(), "method": method, "reference": data.reference,
                   "document_id": document["id"] if document is not None else None,
                   "transaction_id": done.transaction_id, "payment_id": done.id})
        if done.dunning:
            moved = ", ".join(done.dunning)
            await oplog_store.record(conn, who, keys.client_address(request), moved, "customer", customer["id"],
                                     customer_id=customer["id"], partner_id=customer["partner_id"],
                                     summary=f"dunning after the payment: {moved}")
    return done.transaction_id


async def void(conn: Connection, request: web.Request, document: asyncpg.Record, reason: str) -> None:
    who = keys.principal(request)
    async with conn.transaction():
        await ledger.void_document(conn, document["id"], reason.strip(), who.name)
        await oplog_store.record(
            conn, who, keys.client_address(request), "void", "document", document["id"],
            customer_id=document["customer_id"], partner_id=document["partner_id"],
            summary=f"voided {document['kind'].replace('_', ' ')} {document['number']}: {reason.strip()}",
            before={"status": document["status"]}, after={"status": "void", "reason": reason.strip()})
    customer = await common.customer_or_404(conn, request, document["customer_id"])
    await _dunning(conn, request, customer)


async def credit(conn: Connection, request: web.Request, invoice: asyncpg.Record, data: CreditNoteIn) -> int:
    """A credit note of ``invoice``; its id."""
    who = keys.principal(request)
    value = common.amount(data.amount, invoice["currency"], "amount") if data.amount else None
    async with conn.transaction():
        try:
            note_id = await ledger.credit_note(conn, invoice["id"], data.reason.strip(), who.name, value)
        except ledger.LedgerError as e:
            if value is not None and "left to credit" in str(e):
                raise schemas.Invalid({"amount": str(e)}) from None
            raise
        number = await queries.document_number(conn, note_id)
        await oplog_store.record(
            conn, who, keys.client_address(request), "credit_note", "document", note_id,
            customer_id=invoice["customer_id"], partner_id=invoice["partner_id"],
            summary=f"credit note {number} for {invoice['number']}"
                    + (f" of {value} {invoice['currency']}" if value is not None else " (all of it)")
                    + f": {data.reason.strip()}",
            after={"invoice_id": invoice["id"], "amount": str(value) if value is not None else None,
                   "reason": data.reason.strip()})
    customer = await common.customer_or_404(conn, request, invoice["customer_id"])
    await _dunning(conn, request, customer)
    return note_id


async def add_item(conn: Connection, request: web.Request, customer: asyncpg.Record, data: ItemIn) -> int:
    """An item on the customer's next invoice; its id."""
    who = keys.principal(request)
    errors: dict[str, str] = {}
    quantity = price = Decimal(0)
    try:
        quantity = _quantity(data.quantity)
    except schemas.Invalid as e:
        errors.update(e.errors)
    try:
        price = common.amount(data.unit_price, customer["currency"], "unit_price", positive=False)
    except schemas.Invalid as e:
        errors.update(e.errors)
    if data.service_id is not None and not await queries.service_of(conn, customer["id"], data.service_id):
        errors["service_id"] = "not a service of this customer"
    if data.tax_group_id is not None and not await queries.tax_group_exists(conn, data.tax_group_id):
        errors["tax_group_id"] = "no such tax group"
    if errors:
        raise schemas.Invalid(errors)
    async with conn.transaction():
        item_id = await ledger.add_next_invoice_item(
            conn, customer["id"], data.description.strip(), quantity, price, who.name, service_id=data.service_id,
            tax_group_id=data.tax_group_id, price_includes_tax=data.price_includes_tax)
        await oplog_store.record(
            conn, who, keys.client_address(request), "create", "next_invoice_item", item_id,
            customer_id=customer["id"], partner_id=customer["partner_id"],
            summary=f"for the next invoice: {data.description.strip()}, {quantity} x {price} {customer['currency']}",
            after={"description": data.description.strip(), "quantity": str(quantity), "unit_price": str(price),
                   "service_id": data.service_id, "tax_group_id": data.tax_group_id,
                   "price_includes_tax": data.price_includes_tax})
    return item_id


def _quantity(text: str) -> Decimal:
    """A quantity (the schema's pattern holds it to 4 decimals, as numeric(14,4) does)."""
    value = Decimal(text)
    if value <= 0:
        raise schemas.Invalid({"quantity": "must be more than 0"})
    return value
