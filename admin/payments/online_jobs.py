"""Online payments' job in the worker (declared through admin/payments/jobs.py).

- ``payments.autopay`` (daily at 07:20 UTC, after billing's run at 02:00): every invoice due by
  today whose customer turned autopay on for a saved card is charged off-session, once a day and
  at most three times (admin/payments/online.py ``autopay``). Each charge's idempotency key is
  ``autopay:<invoice>:<attempt>``, stored before the gateway is asked: a job killed mid-charge,
  or retried, asks again under the same key and charges once.
"""

from __future__ import annotations

import datetime as dt

from admin.payments import online
from admin.worker.jobs import Context, job
from daemons.secrets import Keyring


@job("payments.autopay", schedule="20 7 * * *", retries=3, timeout=3600)
async def autopay(ctx: Context) -> None:
    """Charge autopay cards for the invoices due today."""
    gateways = online.Gateways(Keyring.load(ctx.settings.secrets))
    try:
        async with ctx.pool.acquire() as conn:
            done = await online.autopay(conn, gateways, dt.datetime.now(dt.UTC).date())
    finally:
        await gateways.close()
    ctx.log.info("autopay", charged=done.charged, failed=done.failed, waiting=done.waiting,
                 errors=(done.errors or [])[:20])
    if done.waiting:
        raise RuntimeError(f"{done.waiting} autopay charges got no answer: retried under their own keys")
