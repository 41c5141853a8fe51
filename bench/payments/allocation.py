#!/usr/bin/env python3
"""payment allocation benchmark: a payment's allocation and status change, and the unblock that
follows (issue 13's target: under 100 ms), on a 100,000-customer database.

Set-up (untimed): an embedded PostgreSQL (``daemons.pgembed``, durable, as in production) in
the work directory, the schema, ``BENCH_CUSTOMERS`` demo customers (``daemons.demo``), every one
billed by a real billing run on 2026-11-01 (one invoice each: 100,000 documents and their
transactions around the ones measured). Then ``BENCH_SAMPLE`` customers drawn at random get 11
invoices more (the months before, issued through the ledger, each due a month after it), so
each has **12 open invoices**, and dunning (``collect.run``) blocks them on 2026-11-20.

Timed: :func:`admin.payments.record.record` of one payment per blocked customer that pays all
12 (as a desk or API payment, with its idempotency key), from the call to its commit: the
customer's lock, the key looked up, the receipt and its credit, the allocation over the 12
invoices oldest first (their statuses become paid), the payments row, and dunning in the same
transaction (the customer is active again at the commit). Each is checked afterwards: 12 paid
invoices, status active, "unblock" among what dunning did. Then the same for ``BENCH_SAMPLE``
other blocked customers paying half of what they owe (the oldest invoices paid, the customer
still blocked), dunning alone for one customer (what record() runs after the payment: its part
of the time), and the payments sent again (a repeat of a key: nothing written).

The run holds ``/tmp/bench.lock``. Results: a table on stdout and ``results.json`` in the work
directory (docs/benchmarks.md ("Payments") has the last one).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
from benchkit import on_embedded_postgres, percentile

from admin.auth.store import Connection
from admin.billing import collect, ledger, run
from admin.billing.periods import Period, add_months
from admin.payments import record
from daemons import db, demo

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "100000"))
SAMPLE = int(os.environ.get("BENCH_SAMPLE", "200"))
WORK = Path(os.environ.get("BENCH_WORKDIR", "/tmp/lastmile-bench-payments-allocation"))
TARGET = 0.100
RUN_DAY = dt.date(2026, 11, 1)
TODAY = dt.date(2026, 11, 20)
OPEN = 12


def say(text: str) -> None:
    print(f"[bench allocation] {text}", file=sys.stderr, flush=True)


async def prepare(conn: asyncpg.Connection, pool: asyncpg.Pool, rnd: random.Random) -> tuple[list[int], list[int]]:
    """Everyone billed once; two samples of customers with 12 open invoices, blocked."""
    await conn.execute("UPDATE customers SET status = 'active' WHERE status = 'new'")
    await conn.execute("UPDATE services SET status = 'active' WHERE status NOT IN ('active', 'blocked')")
    await conn.execute("UPDATE customer_billing SET billing_day = 1, billing_type = 'recurring', due_days = 14, "
                       "block_after_due_days = 3, deactivate_after_block_days = 365")
    await conn.execute("UPDATE services SET start_date = DATE '2026-11-01'")
    await conn.execute("ANALYZE")
    say("billing run for every customer ...")
    t = time.perf_counter()
    await run.run(pool, RUN_DAY, by="bench")
    say(f"billed in {time.perf_counter() - t:.1f} s")
    ids = [r["id"] for r in await conn.fetch("SELECT id FROM customers WHERE status = 'active'")]
    picked = rnd.sample(ids, 2 * SAMPLE)
    rows = await conn.fetch("SELECT c.id, c.partner_id, b.currency, s.id AS service_id, t.price FROM customers c "
                            "JOIN customer_billing b ON b.customer_id = c.id JOIN services s ON s.customer_id = c.id "
                            "JOIN tariffs t ON t.id = s.tariff_id WHERE c.id = ANY($1::bigint[])", picked)
    docs = []
    for r in rows:
        for n in range(1, OPEN):
            start = add_months(RUN_DAY, -n)
            period = Period(start, add_months(start, 1))
            docs.append(ledger.NewDocument(
                kind="invoice", customer_id=r["id"], partner_id=r["partner_id"], currency=r["currency"],
                issued_on=start, origin="manual", due_on=start + dt.timedelta(days=14), period=period,
                lines=(ledger.NewLine("Internet (before)", Decimal(r["price"]) or Decimal("20.00"), period=period,
                                      service_id=r["service_id"], key=f"charge:{r['service_id']}:{start}"),),
                key=f"bench:{r['id']}:{start}", by="bench"))
    say(f"{len(docs)} invoices more for {len(rows)} customers ...")
    for i in range(0, len(docs), 1000):
        async with conn.transaction():
            await ledger.issue(conn, docs[i:i + 1000])
    summary = await collect.run(conn, TODAY, picked)
    blocked = {r["id"] for r in await conn.fetch("SELECT id FROM customers WHERE id = ANY($1::bigint[]) "
                                                  "AND status = 'blocked'", picked)}
    say(f"dunning: {dict(summary.actions)}; {len(blocked)} of {len(picked)} blocked")
    await conn.execute("ANALYZE")
    full = [c for c in picked[:SAMPLE] if c in blocked]
    half = [c for c in picked[SAMPLE:] if c in blocked]
    return full, half


async def owed(conn: Connection, customer_id: int) -> tuple[Decimal, int]:
    row = await conn.fetchrow(
        "SELECT coalesce(sum(s.open), 0) AS open, count(*) AS n FROM documents d JOIN billing_documents_state s "
        "ON s.id = d.id WHERE d.customer_id = $1 AND d.kind = 'invoice' AND s.status IN "
        "('unpaid', 'partially_paid', 'overdue')", customer_id)
    assert row is not None
    return Decimal(row["open"]), int(row["n"])


async def pay(pool: asyncpg.Pool, customers: list[int], share: Decimal, tag: str,
              checks: dict[str, int]) -> list[float]:
    times = []
    async with pool.acquire() as conn:
        for cid in customers:
            debt, invoices = await owed(conn, cid)
            assert invoices == OPEN, (cid, invoices)
            amount = (debt * share).quantize(Decimal("0.01"))
            p = record.NewPayment(cid, amount, TODAY, "bank_transfer", source="api", key=f"{tag}:{cid}", by="bench")
            t = time.perf_counter()
            done = await record.record(conn, p, today=TODAY)
            times.append(time.perf_counter() - t)
            left, still_open = await owed(conn, cid)
            status = await conn.fetchval("SELECT status FROM customers WHERE id = $1", cid)
            checks["recorded"] += done.created
            checks["unblocked"] += "unblock" in done.dunning and status == "active"
            checks["all paid"] += still_open == 0 and left == 0
            checks["still blocked"] += status == "blocked"
    return times


async def measure(url: str) -> dict[str, object]:
    results: dict[str, object] = {"customers": CUSTOMERS, "sample": SAMPLE, "open invoices each": OPEN}
    conn = await db.connect(url)
    await db.apply_schema(conn)
    say(f"loading {CUSTOMERS} demo customers ...")
    t = time.perf_counter()
    await demo.load(conn, CUSTOMERS, seed=1)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2, init=db.init_connection)
    full, half = await prepare(conn, pool, random.Random(13))
    results["set-up seconds"] = round(time.perf_counter() - t, 1)
    for name, customers, share in (("pays all 12", full, Decimal(1)), ("pays half", half, Decimal("0.5"))):
        checks = dict.fromkeys(("recorded", "unblocked", "all paid", "still blocked"), 0)
        times = await pay(pool, customers, share, name.replace(" ", "-"), checks)
        results[name] = {"payments": len(times), "p50 ms": round(percentile(times, 50) * 1000, 2),
                         "p95 ms": round(percentile(times, 95) * 1000, 2),
                         "max ms": round(max(times) * 1000, 2), "checks": checks}
        say(f"{name}: {results[name]}")
    dunning = []
    async with pool.acquire() as c:
        for cid in half:  # still blocked: dunning alone, as record() runs it after the payment (rolled back)
            tx = c.transaction()
            await tx.start()
            t = time.perf_counter()
            await collect.run(c, TODAY, [cid])
            dunning.append(time.perf_counter() - t)
            await tx.rollback()
    results["dunning of one customer"] = {"p50 ms": round(percentile(dunning, 50) * 1000, 2),
                                          "p95 ms": round(percentile(dunning, 95) * 1000, 2)}
    t = time.perf_counter()
    async with pool.acquire() as c:
        for cid in full:
            debt = await c.fetchval("SELECT amount FROM payments WHERE idempotency_key = $1", f"pays-all-12:{cid}")
            again = await record.record(c, record.NewPayment(cid, Decimal(debt), TODAY, "bank_transfer", source="api",
                                                             key=f"pays-all-12:{cid}"), today=TODAY)
            assert not again.created
    results["repeat of a key"] = {"ms each": round((time.perf_counter() - t) / max(1, len(full)) * 1000, 2)}
    counts = await conn.fetchrow("SELECT (SELECT count(*) FROM documents) AS documents, "
                                 "(SELECT count(*) FROM transactions) AS transactions, "
                                 "(SELECT count(*) FROM allocations) AS allocations, "
                                 "(SELECT count(*) FROM payments) AS payments")
    assert counts is not None
    results["rows"] = dict(counts)
    await pool.close()
    await conn.close()
    return results


def report(results: dict[str, object]) -> None:
    print(f"\npayment allocation benchmark: {CUSTOMERS:,} customers, blocked ones with {OPEN} open invoices\n")
    print(f"{'record() to the commit':28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  target {TARGET * 1000:.0f} ms")
    for name in ("pays all 12", "pays half"):
        r = results[name]
        assert isinstance(r, dict)
        print(f"{name:28} {r['p50 ms']:8.2f} {r['p95 ms']:8.2f} {r['max ms']:8.2f}  {r['checks']}")
    print(json.dumps(results, indent=1, default=str))
    (WORK / "results.json").write_text(json.dumps(results, indent=1, default=str))


def main() -> int:
    report(on_embedded_postgres(WORK, 55497, measure, say))
    return 0


if __name__ == "__main__":
    sys.exit(main())
