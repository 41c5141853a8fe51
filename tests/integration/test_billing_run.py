"""`lastmile billing run` as an operator runs it, killed (SIGKILL) at random points and run again
until it finishes: the documents, lines and ledger are those of an uninterrupted run, to the cent
and to the number (reliability.md D-5). The process kills itself just before its N-th database
call (N random), so kills land between chunks, inside a chunk's transaction (between numbers,
documents, lines, charges and allocations) and in the preview, not at the mercy of timing."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import asyncpg

from admin.billing import run
from daemons import db
from tests.conftest import _with_database

ROOT = Path(__file__).resolve().parents[2]
ON = dt.date(2026, 5, 1)
# The run in a process of its own, with small chunks, killing itself before database call argv[2].
DRIVER = """
import os, signal, sys
import asyncpg
from admin.billing import run
run.CHUNK = 7
kill_at, calls = int(sys.argv[2]), [0]
def counted(name):
    original = getattr(asyncpg.connection.Connection, name)
    async def call(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return await original(self, *args, **kwargs)
    setattr(asyncpg.connection.Connection, name, call)
for name in ("execute", "fetch", "fetchrow", "fetchval", "copy_records_to_table"):
    counted(name)
from daemons.cli import main
sys.exit(main(["billing", "run", "--date", sys.argv[1]]))
"""


async def populate(url: str, customers: int = 120) -> None:
    conn = await db.connect(url)
    try:
        rnd = random.Random(12)
        partners = [await conn.fetchval("INSERT INTO partners (name) VALUES ($1) RETURNING id", f"P{i}")
                    for i in range(2)]
        rate = await conn.fetchval("INSERT INTO tax_rates (name, percent) VALUES ('VAT', 21) RETURNING id")
        group = await conn.fetchval("INSERT INTO tax_groups (name) VALUES ('VAT 21') RETURNING id")
        await conn.execute("INSERT INTO tax_group_rates VALUES ($1, $2)", group, rate)
        tariffs = [await conn.fetchval(
            "INSERT INTO tariffs (name, download_kbps, upload_kbps, price, tax_group_id, price_includes_tax) "
            "VALUES ($1, 1000, 1000, $2, $3, $4) RETURNING id", f"T{i}", Decimal(price), group, i % 2 == 0)
            for i, price in enumerate(("19.99", "29.00", "45.50", "9.95"))]
        for n in range(customers):
            cid = await conn.fetchval("INSERT INTO customers (partner_id, number, name) VALUES ($1, $2, $3) "
                                      "RETURNING id", partners[n % 2], f"K{n:04d}", f"Kunde {n}")
            await conn.execute("UPDATE customer_billing SET billing_day = $2, months_in_advance = $3 "
                               "WHERE customer_id = $1", cid, rnd.choice((1, 1, 5, 15)), rnd.choice((1, 1, 1, 3)))
            for s in range(rnd.choice((1, 1, 2))):
                start = dt.date(2026, rnd.randint(1, 4), rnd.randint(1, 28))
                await conn.execute("INSERT INTO services (customer_id, tariff_id, login, password, start_date) "
                                   "VALUES ($1, $2, $3, 'pw', $4)", cid, rnd.choice(tariffs), f"k{n}s{s}", start)
            if n % 9 == 0:
                await conn.execute("INSERT INTO next_invoice_items (customer_id, description, unit_price, currency, "
                                   "tax_group_id, created_at) VALUES ($1, 'Router', 59.00, 'EUR', $2, '2026-04-20')",
                                   cid, group)
    finally:
        await conn.close()


async def outcome(url: str) -> tuple[list[tuple[object, ...]], ...]:
    conn = await db.connect(url)
    try:
        docs = await conn.fetch("SELECT kind, number, customer_id, issued_on, due_on, period_start, period_end, "
                                "subtotal, tax_total, total FROM documents ORDER BY number")
        lines = await conn.fetch("SELECT d.number, l.position, l.description, l.net, l.tax, l.gross, l.taxes::text "
                                 "FROM document_lines l JOIN documents d ON d.id = l.document_id ORDER BY 1, 2")
        ledger = await conn.fetch("SELECT customer_id, direction, kind, amount, posted_on, idempotency_key, "
                                  "description FROM transactions ORDER BY customer_id, idempotency_key, description")
        return tuple([tuple(r) for r in rows] for rows in (docs, lines, ledger))
    finally:
        await conn.close()


async def test_killed_at_random_points_and_run_again_gives_the_uninterrupted_run(pg_server: str,
                                                                                  db_url: str) -> None:
    await populate(db_url)
    golden = _with_database(pg_server, "lastmile_billing_golden")
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute("DROP DATABASE IF EXISTS lastmile_billing_golden")
        await admin.execute(f'CREATE DATABASE lastmile_billing_golden TEMPLATE "{db_url.rsplit("/", 1)[1]}"')
    finally:
        await admin.close()
    pool = await asyncpg.create_pool(golden, min_size=1, max_size=2, init=db.init_connection)
    try:
        started = asyncio.get_running_loop().time()
        summary = await run.run(pool, ON)
        print(f"uninterrupted run: {asyncio.get_running_loop().time() - started:.2f} s, {summary.describe()}")
    finally:
        await pool.close()
    assert summary.documents > 100

    env = {**os.environ, "PYTHONPATH": str(ROOT), "LASTMILE_DATABASE__URL": db_url, "LASTMILE_LOG__FORMAT": "json"}
    rnd = random.Random(7)
    kills = 0
    for _ in range(60):
        proc = subprocess.run([sys.executable, "-c", DRIVER, ON.isoformat(), str(rnd.randint(1, 150))], env=env,
                              capture_output=True, text=True, timeout=60)
        if proc.returncode == -9:
            kills += 1
            continue
        assert proc.returncode == 0, proc.stderr
        assert "issued" in proc.stdout, proc.stdout
        break
    else:
        raise AssertionError("the run never finished")
    print(f"killed {kills} times")
    assert kills >= 2, "no kill landed: make the run slower or the kills earlier"
    mine, theirs = await outcome(db_url), await outcome(golden)
    assert [len(x) for x in mine] == [len(x) for x in theirs]
    assert mine == theirs
    # and once more: nothing left to bill
    again = subprocess.run([sys.executable, "-c", DRIVER, ON.isoformat(), "0"], env=env, capture_output=True, text=True,
                           timeout=60, check=True)
    assert "Nothing to bill on 2026-05-01." in again.stdout
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute("DROP DATABASE lastmile_billing_golden")
    finally:
        await admin.close()
