"""Payments taken by hand (the desk, the API): several at once, all or none.

A batch (the mass-entry grid, ``POST /api/v1/payments/batch``) is recorded in one transaction
through :func:`admin.payments.record.record`, each payment in a savepoint of its own: a payment
refused is said by its place in the batch, the others are still tried (so every refusal is shown
at once), and then nothing of the batch is kept. The customers' ledger locks are taken first, in
id order, so two batches at once never deadlock. Each payment keeps its own idempotency key (the
batch's key and its place), so a batch sent twice records once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from admin.auth.store import Connection
from admin.billing import ledger
from admin.billing import store as billing_store
from admin.payments import record


class BatchRefused(Exception):
    """Some payments of a batch were refused (``errors``: by their place, from 0); nothing was recorded."""

    def __init__(self, errors: dict[int, str]) -> None:
        super().__init__("; ".join(f"payment {i + 1}: {text}" for i, text in sorted(errors.items())))
        self.errors = errors


async def record_all(conn: Connection, payments: Sequence[record.NewPayment], *,
                     today: dt.date | None = None) -> list[record.Recorded]:
    """Record every payment of ``payments`` or none (:class:`BatchRefused`); what each became."""
    if not payments:
        raise BatchRefused({0: "a batch has at least one payment"})
    errors: dict[int, str] = {}
    done: list[record.Recorded] = []
    async with conn.transaction():
        await billing_store.lock_customers(conn, sorted({p.customer_id for p in payments}))
        for i, p in enumerate(payments):
            try:
                done.append(await record.record(conn, p, today=today))
            except (record.PaymentError, ledger.LedgerError) as e:
                errors[i] = str(e)
        if errors:
            raise BatchRefused(errors)  # leaves the transaction: nothing of the batch is kept
    return done
