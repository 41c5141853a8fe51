"""Billing on the demo data (`lastmile up`): taxes, a month billed, most of it paid.

Run on every `up` over demo data and idempotent: the taxes are made once, services without a
start date start on the first of last month, the run for today bills what is not billed yet,
and the payments carry keys of their own.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import asyncpg

from admin.billing import periods, run, store
from admin.payments import record


async def setup(pool: asyncpg.Pool, today: dt.date) -> str:
    """Bill the demo customers for this month and let four in five pay; what was done, in a line."""
    async with pool.acquire() as conn:
        await store.demo_taxes(conn, "VAT 20%", Decimal(20))
        await store.demo_start_dates(conn, periods.add_months(today.replace(day=1), -1))
    try:
        summary = await run.run(pool, today, by="demo")
    except run.RunError as e:  # a preview someone left waiting: leave it to them
        return str(e)
    paid = 0
    async with pool.acquire() as conn:
        for customer_id, amount in await store.demo_open_invoices(conn):
            if customer_id % 5 == 0:
                continue  # one in five pays late: dunning has something to do
            await record.record(conn, record.NewPayment(
                customer_id, amount, today, "bank_transfer", payer=f"demo {customer_id}", comment="demo",
                key=f"demo:{customer_id}:{today.isoformat()}", by="demo"), dunning=False)
            paid += 1
    return f"{summary.describe()} {paid} customers paid."
