"""The portal's jobs: the customers' own stops (admin/portal/plan.py) stop and start their services."""

from __future__ import annotations

import datetime as dt

from admin.portal import plan_store
from admin.worker.jobs import Context, job


@job("portal.stops", schedule="*/10 * * * *", retries=3, timeout=120)
async def stops(ctx: Context) -> None:
    """Stop the services whose customer's stop began today, start those whose stop is over (UTC days)."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        stopped, started = await plan_store.due(conn, dt.datetime.now(dt.UTC).date())
    if stopped or started:
        ctx.log.info("portal stops", stopped=len(stopped), started=len(started))
