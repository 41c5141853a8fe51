"""The partners' jobs in the worker (admin/worker/jobs.py finds them here).

- ``partners.commissions`` (every 5 minutes, one at a time): the commissions of the allocations
  made since the last run (commissions_store.compute), read after a cursor in event_cursors a
  minute behind now, so that the allocations of transactions still in flight have committed.

Why a cursor and not an anti-join over a recent window: allocations carry no index on
``created_at`` and most of them are not a percentage partner's, so every run of an anti-join
would look at the whole window again; the cursor reads each stretch of time once, and the
``allocation_id`` UNIQUE with ON CONFLICT DO NOTHING makes a stretch read twice (a retried run)
harmless. An allocation whose transaction took longer than the minute to commit is left to
``compute`` over its period (a repair; the tests' way in).
"""

from __future__ import annotations

import datetime as dt

from admin.partners import commissions_store
from admin.worker.jobs import Context, job

LAG = dt.timedelta(minutes=1)
"""How far behind now the cursor reads (an allocation's created_at is its transaction's start)."""
FIRST = dt.timedelta(days=35)
"""How far back the first run reads (the month before, so its statement is complete)."""


@job("partners.commissions", schedule="*/5 * * * *", retries=3, timeout=600, concurrency=1)
async def commissions(ctx: Context) -> None:
    """Work out the commissions of the payments allocated since the last run."""
    upto = dt.datetime.now(dt.UTC) - LAG
    async with ctx.pool.acquire() as conn, conn.transaction():
        since = await commissions_store.advance(conn, upto, FIRST)
        made = await commissions_store.compute(conn, since, upto) if since < upto else 0
    if made:
        ctx.log.info("partner commissions", written=made)
