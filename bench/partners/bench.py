#!/usr/bin/env python3
"""partners benchmark: a year of percentage-mode commissions for 50 partners, against issue 18's
"commission statements for a year under 2 s", in one run (``bench/partners/run.sh``).

Set-up: an embedded PostgreSQL (``daemons.pgembed``, durable) in the work directory with the
schema; 50 partners in percentage mode from January (10 %), ``BENCH_CUSTOMERS`` customers spread
over them, and for each customer and month of the year a charge of 12.00 paid by a payment of
12.00 (a debit, a credit and its allocation: loaded by SQL). The commissions of months 1 to 11
are loaded by SQL as the job would have written them; month 12's are worked out by
``commissions_store.compute`` (timed: the rule applied to one month of allocations at once, the
anti-join over every allocation of the year).

Measured:
(a) **compute**: one month of allocations worked out and written: seconds, rows per second;
(b) **a year of statements**: every month's statement of one partner issued (12 issues, timed
    together), then of all 50 partners (600 issues): target < 2 s for a partner's year;
(c) **the owed report** over every partner (commissions less payouts), 10 times: the slowest,
    target < 2 s; a partner's month of commissions (the partner's page), 10 times: the slowest.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from benchkit import on_embedded_postgres

from admin.billing import money
from admin.partners import commissions as rule
from admin.partners import commissions_store as store
from daemons import db

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "100000"))
PARTNERS = 50
YEAR = dt.date(2026, 1, 1)
WORK = Path(os.environ.get("BENCH_WORKDIR", "/tmp/lastmile-bench-partners"))


def say(text: str) -> None:
    print(f"[bench partners] {text}", file=sys.stderr, flush=True)


async def load(conn: Any) -> float:
    """The partners, customers, a year of charges paid, and months 1-11's commissions. Seconds."""
    started = time.monotonic()
    await conn.execute("INSERT INTO partners (name, commission_percent) SELECT 'Partner ' || g, 10 "
                       "FROM generate_series(1, $1) g", PARTNERS)
    await conn.execute("INSERT INTO partner_modes (partner_id, starts_on, mode) SELECT id, $1, 'percentage' "
                       "FROM partners", YEAR)
    await conn.execute("INSERT INTO customers (partner_id, number, name) SELECT p.ids[1 + g % $2], 'B' || g, "
                       "'Customer ' || g FROM generate_series(1, $1) g, "
                       "(SELECT array_agg(id ORDER BY id) AS ids FROM partners) p", CUSTOMERS, PARTNERS)
    n = CUSTOMERS * 12
    # month m (0..11) of customer c: n = m * CUSTOMERS + i; debit id n, credit id n + total
    await conn.execute("""
        INSERT INTO transactions (id, customer_id, direction, kind, amount, currency, posted_on, description)
        SELECT g, c.ids[1 + (g - 1) % $2], 'debit', 'charge', 12, 'EUR',
               $3::date + (((g - 1) / $2) || ' months')::interval, 'Install'
        FROM generate_series(1, $1) g, (SELECT array_agg(id ORDER BY id) AS ids FROM customers) c""",
                       n, CUSTOMERS, YEAR)
    await conn.execute("""
        INSERT INTO transactions (id, customer_id, direction, kind, amount, currency, posted_on, description)
        SELECT id + $1, customer_id, 'credit', 'payment', 12, 'EUR', posted_on + 3, 'Payment'
        FROM transactions WHERE id <= $1""", n)
    await conn.execute("SELECT setval(pg_get_serial_sequence('transactions', 'id'), $1)", 2 * n)
    await conn.execute("""
        INSERT INTO allocations (id, customer_id, credit_id, target_transaction_id, amount) OVERRIDING SYSTEM VALUE
        SELECT id, customer_id, id + $1, id, 12 FROM transactions WHERE id <= $1""", n)
    await conn.execute("SELECT setval(pg_get_serial_sequence('allocations', 'id'), $1)", n)
    month11 = CUSTOMERS * 11
    await conn.execute("""
        INSERT INTO partner_commissions (partner_id, customer_id, allocation_id, earned_on, base, amount, currency,
                                         detail)
        SELECT c.partner_id, t.customer_id, t.id, t.posted_on + 3, 12, 1.2, 'EUR',
               '[{"position": null, "category": "one_time", "tariff_id": null, "base": "12.0000", "percent": "10"}]'
        FROM transactions t JOIN customers c ON c.id = t.customer_id WHERE t.id <= $1""", month11)
    await conn.execute("VACUUM ANALYZE")
    return time.monotonic() - started


async def timed(runs: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    took = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        took.append(time.perf_counter() - start)
    return took


async def measure(url: str) -> dict[str, object]:
    first = await asyncpg.connect(url)
    await db.apply_schema(first)
    await first.close()
    pool = await asyncpg.create_pool(url, min_size=2, max_size=4, init=db.init_connection)
    out: dict[str, object] = {"partners": PARTNERS, "customers": CUSTOMERS}
    try:
        async with pool.acquire() as conn:
            out["load seconds"] = round(await load(conn), 1)
            say(f"loaded in {out['load seconds']} s")
            now = dt.datetime.now(dt.UTC)
            start = time.perf_counter()
            async with conn.transaction():
                made = await store.compute(conn, now - dt.timedelta(days=1), now + dt.timedelta(minutes=1))
            took = time.perf_counter() - start
            out["compute rows"] = made
            out["compute seconds"] = round(took, 2)
            out["compute rows per second"] = round(made / took)
            say(f"compute: {made} commissions in {took:.2f} s")
            # month 12's commissions, earned on the day they were computed: dated back into December
            await conn.execute("UPDATE partner_commissions SET earned_on = $1 WHERE earned_on >= $2",
                               dt.date(2026, 12, 4), dt.date(2026, 12, 1))
            count = await conn.fetchval("SELECT count(*) FROM partner_commissions")
            out["commissions"] = int(count)
            partners = [r["id"] for r in await conn.fetch("SELECT id FROM partners ORDER BY id")]
            months = [YEAR]
            while len(months) < 12:
                months.append(rule.next_month(months[-1]))
            today = dt.date(2026, 12, 31)

            async def year_of(partner_id: int) -> None:
                for month in months:
                    async with conn.transaction():
                        await store.issue(conn, partner_id, month, today=today, by="bench")

            start = time.perf_counter()
            await year_of(partners[0])
            out["a partner's year of statements ms"] = round((time.perf_counter() - start) * 1000, 1)
            start = time.perf_counter()
            for p in partners[1:]:
                await year_of(p)
            out["every partner's year of statements s"] = round(time.perf_counter() - start, 2)
            start = time.perf_counter()
            await year_of(partners[0])  # again: the same statements
            out["a partner's year issued again ms"] = round((time.perf_counter() - start) * 1000, 1)
            statements = await conn.fetchval("SELECT count(*) FROM partner_statements")
            out["statements"] = int(statements)
            async with conn.transaction():
                await store.record_payout(conn, partners[0], money.quantize(
                    await store.owed_of(conn, partners[0], "EUR"), "EUR"), "EUR", today, key="bench")
            out["owed report max ms"] = round(max(await timed(10, lambda: store.owed(conn, None))) * 1000, 1)
            out["a partner's owed max ms"] = round(max(await timed(10, lambda: store.owed(conn, partners[0]))) * 1000,
                                                   1)
            out["a partner's month max ms"] = round(max(await timed(
                10, lambda: store.commissions(conn, partners[0], months[6], months[7]))) * 1000, 1)
            out["a partner's statements max ms"] = round(max(await timed(
                10, lambda: store.statements(conn, None, partners[0]))) * 1000, 1)
    finally:
        await pool.close()
    say(f"results: {out}")
    return out


def report(results: dict[str, object]) -> None:
    print(f"{'measure':40} {'value':>10} {'target':>8}")
    targets = {"a partner's year of statements ms": 2000, "owed report max ms": 2000}
    for name, value in results.items():
        print(f"{name:40} {value!s:>10} {targets.get(name, '')!s:>8}")
    print(json.dumps(results, indent=1, default=str))
    (WORK / "results.json").write_text(json.dumps(results, indent=1, default=str))


def main() -> int:
    report(on_embedded_postgres(WORK, 55499, measure, say))
    return 0


if __name__ == "__main__":
    sys.exit(main())
