"""Payments' jobs in the worker (admin/worker/jobs.py finds them here).

- ``idempotency.prune`` (hourly at :41): the API's Idempotency-Key rows older than a day
  (admin/idempotency.py keeps them :data:`~admin.idempotency.KEEP_HOURS` hours at least, so a
  client's retry within a day is answered as the first request was).
- ``payments.direct_debit_settle`` (daily at 06:10): every pending SEPA collection whose
  collection date has come becomes a payment of its invoice (admin/payments/direct_debit_service.py;
  named by its collection, so a rerun records nothing twice).
- ``payments.autopay`` (daily at 07:20): saved cards with autopay charged for the invoices due
  (admin/payments/online_jobs.py).
"""

from __future__ import annotations

import datetime as dt

from admin import idempotency
from admin import idempotency_store as store
from admin.payments import direct_debit_service, online_jobs
from admin.worker.jobs import Context, job

__all__ = ["online_jobs"]  # its job joins the worker's with this module


@job("idempotency.prune", schedule="41 * * * *", retries=3, timeout=600)
async def prune_idempotency_keys(ctx: Context) -> None:
    """Delete the API's Idempotency-Key rows older than a day."""
    async with ctx.pool.acquire() as conn:
        deleted = await store.prune(conn, idempotency.KEEP_HOURS)
    if deleted:
        ctx.log.info("idempotency keys pruned", keys=deleted, hours=idempotency.KEEP_HOURS)


@job("payments.direct_debit_settle", schedule="10 6 * * *", retries=5, timeout=3600)
async def settle_direct_debits(ctx: Context) -> None:
    """Settle the SEPA collections whose collection date has come."""
    today = dt.datetime.now(dt.UTC).date()
    async with ctx.pool.acquire() as conn:
        done = await direct_debit_service.settle(conn, today, direct_debit_service.WORKER, None)
    if done.count:
        ctx.log.info("direct debits settled", collections=done.count, total=str(done.total),
                     unpinned=list(done.unpinned), dunning=dict(done.dunning))
