#!/usr/bin/env python3
"""billing benchmark: the billing run, prepaid charges, dunning and statements over the demo.

What is measured, in one run (``bench/billing/run.sh``), against issue 12's targets:

Set-up: an embedded PostgreSQL (``daemons.pgembed``, durable, as in production) in the work
directory, the schema, ``BENCH_CUSTOMERS`` demo customers (``daemons.demo``, one service each),
then mixed billing: 70 % recurring (in advance, billing day 1, 10 % of them three months at a
time), 20 % prepaid daily, 10 % prepaid every 30 days; a 20 % VAT group on every tariff (half
the tariffs priced with VAT included); services started on random days of September-October
2026; a deposit for every prepaid customer; a one-time item for 5 % of the recurring ones.

(a) **the first run** on 2026-11-01 (stubs since each start, and the catch-up of whole periods):
    untimed against the target (a catch-up is a one-off), reported;
(b) **the monthly run** on 2026-12-01: preview + confirm, every recurring customer invoiced
    (numbers, lines, taxes, charges, allocation of credit), target < 30 s;
(c) **the daily prepaid charge** for 2026-12-01, after the days up to 30 November were charged
    (untimed): target < 15 s;
(d) payments by 80 % of the invoiced customers (untimed, through ledger.record_payment's SQL path
    in bulk), then **dunning** on the day blocking is due: target < 10 s;
(e) **a customer's statement** (ledger.statement) for ``BENCH_STATEMENTS`` random customers: p95
    target < 50 ms.

Nothing here has a peer that can run on this machine (Splynx and UISP are closed and hosted;
Freeside bills per customer in Perl through its own event queue); the figures stand against the
targets. Each step's rows per second are reported, so two runs of different sizes
(``BENCH_CUSTOMERS=1000000``) show whether the run stays linear.

The run holds ``/tmp/bench.lock``. Results: a table on stdout and ``results.json`` in the work
directory.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
from benchkit import on_embedded_postgres, percentile

from admin.billing import collect, ledger, run
from daemons import db, demo

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "100000"))
STATEMENTS = int(os.environ.get("BENCH_STATEMENTS", "200"))
WORK = Path(os.environ.get("BENCH_WORKDIR", "/tmp/lastmile-bench-billing"))
TARGETS = {"monthly run": 30.0, "daily prepaid": 15.0, "dunning": 10.0, "statement p95": 0.050}


def say(text: str) -> None:
    print(f"[bench billing] {text}", file=sys.stderr, flush=True)


async def prepare(conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO tax_rates (name, percent) VALUES ('VAT 20%', 20)")
    await conn.execute("INSERT INTO tax_groups (name) VALUES ('VAT 20')")
    await conn.execute("INSERT INTO tax_group_rates SELECT g.id, r.id FROM tax_groups g, tax_rates r")
    await conn.execute("UPDATE tariffs SET tax_group_id = (SELECT id FROM tax_groups), "
                       "price_includes_tax = (id % 2 = 0)")
    await conn.execute("UPDATE customers SET status = 'active' WHERE status = 'new'")
    await conn.execute("UPDATE services SET status = 'active' WHERE status NOT IN ('active', 'blocked')")
    await conn.execute(
        "UPDATE customer_billing SET billing_day = 1, billing_type = CASE WHEN customer_id % 10 < 7 THEN 'recurring' "
        "WHEN customer_id % 10 < 9 THEN 'prepaid_daily' ELSE 'prepaid_custom' END, "
        "period_days = CASE WHEN customer_id % 10 = 9 THEN 30 END, "
        "months_in_advance = CASE WHEN customer_id % 100 < 7 THEN 3 ELSE 1 END, block_after_due_days = 2")
    await conn.execute("UPDATE services SET start_date = DATE '2026-09-01' + (id * 7919 % 61)::int")
    # deposits for the prepaid customers, as payments with receipts would leave them (one credit each)
    await conn.execute(
        "INSERT INTO transactions (customer_id, direction, kind, amount, currency, posted_on, description, "
        "idempotency_key) SELECT customer_id, 'credit', 'payment', 100, 'EUR', DATE '2026-09-01', 'Deposit', "
        "'deposit:' || customer_id FROM customer_billing WHERE billing_type <> 'recurring'")
    await conn.execute(
        "INSERT INTO next_invoice_items (customer_id, description, unit_price, currency, tax_group_id, created_at) "
        "SELECT customer_id, 'Installation', 49, 'EUR', (SELECT id FROM tax_groups), '2026-11-15' "
        "FROM customer_billing WHERE billing_type = 'recurring' AND customer_id % 20 = 0")
    await conn.execute("ANALYZE")


async def pay(conn: asyncpg.Connection, on: dt.date) -> int:
    """80 % of the customers with open invoices pay all that is open, through record_payment."""
    rows = await conn.fetch("SELECT d.customer_id, sum(s.open) AS open FROM documents d "
                            "JOIN billing_documents_state s USING (id) WHERE d.kind = 'invoice' AND s.open > 0 "
                            "AND d.customer_id % 5 <> 0 GROUP BY d.customer_id")
    for r in rows:
        async with conn.transaction():
            await ledger.record_payment(conn, r["customer_id"], Decimal(r["open"]), on, method="bank transfer",
                                        reference=f"INV-{r['customer_id']}")
    return len(rows)


async def timed(what: str, results: dict[str, object], work: object) -> object:
    say(f"{what} ...")
    t = time.perf_counter()
    out = await work  # type: ignore[misc]
    seconds = time.perf_counter() - t
    results[what] = {"seconds": round(seconds, 3), "outcome": getattr(out, "describe", lambda: str(out))()}
    say(f"{what}: {seconds:.2f} s ({results[what]['outcome']})")  # type: ignore[index]
    return out


def main() -> int:
    report(on_embedded_postgres(WORK, 55499, measure, say))
    return 0


async def measure(url: str) -> dict[str, object]:
    results: dict[str, object] = {"customers": CUSTOMERS}
    conn = await db.connect(url)
    await db.apply_schema(conn)
    say(f"loading {CUSTOMERS} demo customers ...")
    t = time.perf_counter()
    await demo.load(conn, CUSTOMERS, seed=1)
    await prepare(conn)
    say(f"loaded in {time.perf_counter() - t:.1f} s")
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2, init=db.init_connection)
    await timed("first run (catch-up)", results, run.run(pool, dt.date(2026, 11, 1), by="bench"))
    await timed("prepaid catch-up", results, run.charge_prepaid(pool, dt.date(2026, 11, 30), by="bench"))
    await conn.execute("ANALYZE")
    await timed("monthly run", results, run.run(pool, dt.date(2026, 12, 1), by="bench"))
    await timed("daily prepaid", results, run.charge_prepaid(pool, dt.date(2026, 12, 1), by="bench"))
    say("payments by 80 % of the customers ...")
    t = time.perf_counter()
    paid = await pay(conn, dt.date(2026, 12, 10))
    results["payments"] = {"count": paid, "seconds": round(time.perf_counter() - t, 3)}
    await conn.execute("ANALYZE")
    await timed("dunning", results, collect.run(conn, dt.date(2026, 12, 18)))
    ids = [r["id"] for r in await conn.fetch("SELECT id FROM customers ORDER BY random() LIMIT $1", STATEMENTS)]
    times = []
    sizes = []
    for cid in ids:
        t = time.perf_counter()
        s = await ledger.statement(conn, cid)
        times.append(time.perf_counter() - t)
        sizes.append(len(s.entries))
    results["statement p95"] = {"seconds": round(percentile(times, 95), 4),
                                "p50": round(percentile(times, 50), 4),
                                "entries (mean)": round(statistics.mean(sizes), 1)}
    counts = await conn.fetchrow("SELECT (SELECT count(*) FROM documents) AS documents, "
                                 "(SELECT count(*) FROM transactions) AS transactions, "
                                 "(SELECT count(*) FROM allocations) AS allocations")
    assert counts is not None
    results["rows"] = dict(counts)
    await pool.close()
    await conn.close()
    return results


def report(results: dict[str, object]) -> None:
    print(f"\nbilling benchmark, {CUSTOMERS:,} customers\n")
    print(f"{'step':28} {'seconds':>9} {'target':>8} {'ratio':>7}")
    for what in ("first run (catch-up)", "prepaid catch-up", "monthly run", "daily prepaid", "dunning",
                 "statement p95"):
        seconds = results[what]["seconds"]  # type: ignore[index]
        target = TARGETS.get(what)
        ratio = f"{target / seconds:.1f}x" if target else ""
        print(f"{what:28} {seconds:9.3f} {target or '':>8} {ratio:>7}")
    print(json.dumps(results, indent=1, default=str))
    (WORK / "results.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
