"""Billing's jobs in the worker (admin/worker/jobs.py finds them here).

- ``billing.daily`` (02:00 UTC): the prepaid charges of the day; with automatic issuing on
  (Finance settings), today's run previewed to be confirmed by itself ``confirmation_days`` later,
  and every preview whose time has come issued; then dunning.
- ``billing.dunning`` (every hour at :30): dunning again, so that a customer who paid is let back
  within the hour even when nobody looked (a payment in the admin lets it back at once).
- ``billing.confirm``: issue one run, ``{"run_id": N, "by": "login"}`` (the admin's Confirm
  button enqueues it, so a run of 100,000 invoices does not hold a web request).

Each is idempotent (runs by service and period, charges by key, dunning by state), so a retry
after a crash does nothing twice.
"""

from __future__ import annotations

import datetime as dt

from admin.billing import collect, run, store
from admin.worker.jobs import Context, job


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@job("billing.daily", schedule="0 2 * * *", retries=5, timeout=3600)
async def daily(ctx: Context) -> None:
    """The day's billing: prepaid charges, automatic issuing, dunning."""
    today = _today()
    async with ctx.pool.acquire() as conn:
        settings = await store.settings(conn)
    if not settings["enabled"]:
        ctx.log.info("billing_off")
        return
    prepaid = await run.charge_prepaid(ctx.pool, today, "worker")
    ctx.log.info("prepaid_charged", charges=prepaid.charges, customers=prepaid.customers)
    if settings["auto_issue"]:
        now = dt.datetime.now(dt.UTC)
        async with ctx.pool.acquire() as conn:
            due = await store.previews_due(conn, now)
        for run_id in due:
            issued = await run.confirm(ctx.pool, run_id, "worker (automatic issuing)")
            ctx.log.info("run_issued", run_id=run_id, documents=issued.documents)
        try:
            preview = await run.preview(ctx.pool, today, None, "worker",
                                        confirm_after=now + dt.timedelta(days=settings["confirmation_days"]))
        except run.RunError as e:  # a preview of today waits already
            ctx.log.info("preview_not_made", reason=str(e))
        else:
            if preview.nothing and preview.run_id is not None:
                async with ctx.pool.acquire() as conn:
                    await run.cancel(conn, preview.run_id, "worker")
            elif settings["confirmation_days"] == 0 and preview.run_id is not None:
                await run.confirm(ctx.pool, preview.run_id, "worker (automatic issuing)")
            ctx.log.info("preview_made", run_id=preview.run_id, customers=preview.customers)
    await dunning(ctx)


@job("billing.dunning", schedule="30 * * * *", retries=3, timeout=1800)
async def dunning(ctx: Context) -> None:
    """Block, deactivate and let back in by what customers owe today."""
    async with ctx.pool.acquire() as conn:
        summary = await collect.run(conn, _today())
    ctx.log.info("dunning", looked_at=summary.looked_at, **summary.actions)


@job("billing.confirm", retries=5, timeout=3600)
async def confirm(ctx: Context) -> None:
    """Issue the run ``payload["run_id"]`` (again after a crash: it goes on where it stopped)."""
    issued = await run.confirm(ctx.pool, int(ctx.payload["run_id"]), str(ctx.payload.get("by", "worker")))
    ctx.log.info("run_issued", run_id=issued.run_id, documents=issued.documents)
