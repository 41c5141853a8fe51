"""Record a payment once, whichever way it came, and take one back.

Every way in (the desk, the API, a gateway's webhook, a direct-debit return, a bank statement
line) ends here: :func:`record` writes the receipt and its credit (admin/billing/ledger.py),
allocated by the ledger's rules (to a named invoice or proforma, or to a service's charges for a
period, else oldest first), and the ``payments`` row that says how it came. A payment has up to
four names that make a second recording of it a no-op that answers with the first: the
caller's idempotency key, the gateway's id of it, its statement line, its collection. The
customer's ledger lock is taken before they are looked up, so two deliveries of the same
payment at once record it once. Dunning looks at the customer again in the same transaction:
a blocked customer whose debt is paid is active again when the payment commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from admin.auth.store import Connection
from admin.billing import collect, ledger
from admin.billing import store as billing_store
from admin.billing.periods import Period
from admin.payments import store

SOURCES = ("desk", "api", "online", "direct_debit", "bank_statement")


class PaymentError(ValueError):
    """A payment refused, said for the person (or the gateway's event log) that sent it."""


@dataclass(frozen=True, slots=True)
class NewPayment:
    customer_id: int
    amount: Decimal
    paid_on: dt.date
    type_code: str                       # payment_types.code: cash, bank_transfer, card, ...
    source: str = "desk"
    receipt_number: str = ""             # the operator's own (a paper receipt's)
    payer: str = ""
    comment: str = ""
    document_id: int | None = None       # an invoice or proforma it pays
    service_id: int | None = None        # or a service's charges ...
    period: Period | None = None         # ... for this period
    gateway: str | None = None
    gateway_ref: str | None = None       # the gateway's id of the payment (pi_..., a capture id)
    intent_id: int | None = None
    statement_line_id: int | None = None
    collection_id: int | None = None
    key: str | None = None               # the caller's idempotency key
    by: str = ""


@dataclass(frozen=True, slots=True)
class Recorded:
    id: int
    receipt_id: int
    receipt_number: str
    transaction_id: int
    created: bool                        # False: it was recorded before, nothing was written now
    dunning: tuple[str, ...] = ()        # what dunning did after it ("unblock", ...)


def _ledger_key(p: NewPayment) -> str | None:
    """The ledger's idempotency key of the payment: the most specific name it has."""
    if p.gateway is not None and p.gateway_ref is not None:
        return f"payment:{p.gateway}:{p.gateway_ref}"
    if p.statement_line_id is not None:
        return f"payment:statement-line:{p.statement_line_id}"
    if p.collection_id is not None:
        return f"payment:collection:{p.collection_id}"
    if p.key is not None:
        return f"payment:key:{p.key}"
    return None


async def record(conn: Connection, p: NewPayment, *, dunning: bool = True, today: dt.date | None = None) -> Recorded:
    """Record ``p`` (in the caller's transaction, or one of its own); see the module's doc.
    Dunning decides as of ``today`` (the real one unless a test says otherwise)."""
    if p.source not in SOURCES:
        raise PaymentError(f"unknown source {p.source!r}")
    if (p.gateway is None) != (p.gateway_ref is None):
        raise PaymentError("a gateway's payment names the gateway and its id of the payment")
    if p.period is not None and p.service_id is None:
        raise PaymentError("a payment for a period names the service too")
    async with conn.transaction():
        await billing_store.lock_customers(conn, [p.customer_id])
        first = await store.known(conn, key=p.key, gateway=p.gateway, gateway_ref=p.gateway_ref,
                                  statement_line_id=p.statement_line_id, collection_id=p.collection_id)
        if first is not None:
            if first["customer_id"] != p.customer_id or Decimal(first["amount"]) != p.amount:
                raise PaymentError(f"this payment was recorded already (receipt {first['receipt_no']}) "
                                   f"for another customer or amount")
            return Recorded(first["id"], first["receipt_id"], first["receipt_no"], first["transaction_id"], False)
        kind = await store.payment_type(conn, p.type_code)
        if kind is None or not kind["enabled"]:
            raise PaymentError(f"no payment type {p.type_code!r} (or it is disabled)")
        if p.service_id is not None and not await store.service_of(conn, p.customer_id, p.service_id):
            raise PaymentError(f"service {p.service_id} is not one of this customer's")
        reference = p.receipt_number.strip() or (p.gateway_ref or "")
        try:
            transaction_id = await ledger.record_payment(
                conn, p.customer_id, p.amount, p.paid_on, method=kind["name"], reference=reference, by=p.by,
                document_id=p.document_id, idempotency_key=_ledger_key(p), service_id=p.service_id,
                period=p.period)
        except ledger.LedgerError as e:
            raise PaymentError(str(e)) from None
        receipt = await store.receipt_of(conn, transaction_id)
        currency = await billing_store.currencies(conn, [p.customer_id])
        payment_id = await store.insert_payment(conn, {
            "customer_id": p.customer_id, "transaction_id": transaction_id, "receipt_id": receipt["id"],
            "type_id": kind["id"], "source": p.source, "paid_on": p.paid_on, "amount": p.amount,
            "currency": currency[p.customer_id], "receipt_number": p.receipt_number.strip(),
            "payer": p.payer.strip(), "comment": p.comment.strip(), "document_id": p.document_id,
            "service_id": p.service_id, "period_start": p.period.start if p.period else None,
            "period_end": p.period.end if p.period else None, "gateway": p.gateway, "gateway_ref": p.gateway_ref,
            "intent_id": p.intent_id, "statement_line_id": p.statement_line_id, "collection_id": p.collection_id,
            "idempotency_key": p.key, "created_by": p.by})
        moved: tuple[str, ...] = ()
        if dunning:
            summary = await collect.run(conn, today or _today(), [p.customer_id])
            moved = tuple(sorted(summary.actions))
    return Recorded(payment_id, receipt["id"], receipt["number"], transaction_id, True, moved)


async def reverse(conn: Connection, payment_id: int, reason: str, by: str = "", *, refund_ref: str | None = None,
                  dunning: bool = True, today: dt.date | None = None) -> None:
    """Take a payment back: its receipt void, what it paid open again (ledger.reverse_payment),
    and why; ``refund_ref`` names the gateway's refund when money went back through it. Taking
    back a payment taken back already is refused."""
    async with conn.transaction():
        row = await store.payment(conn, payment_id)
        if row is None:
            raise PaymentError(f"no payment {payment_id}")
        if row["reversed_at"] is not None:
            raise PaymentError(f"payment {row['receipt_no']} was taken back already")
        try:
            await ledger.reverse_payment(conn, row["receipt_id"], reason, by)
        except ledger.LedgerError as e:
            raise PaymentError(str(e)) from None
        await store.insert_reversal(conn, payment_id, reason.strip(), refund_ref, by)
        if dunning:
            await collect.run(conn, today or _today(), [row["customer_id"]])


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()
