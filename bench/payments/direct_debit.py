#!/usr/bin/env python3
"""direct-debit benchmark: a SEPA batch of 10,000 collections made (the due invoices found, the
pain.008 file written, the batch and its collections stored), then settled, and a return file of
1,000 rejects and returns applied. Issue 13 sets no target for these; the figures are reported.

Set-up (untimed): an embedded PostgreSQL (``daemons.pgembed``, durable, as in production) in the
work directory, the schema, ``BENCH_CUSTOMERS`` demo customers (``daemons.demo``), every one
billed by a real billing run on 2026-11-01 (one invoice each, due 2026-11-15), and a mandate for
``BENCH_MANDATES`` of them drawn at random; the creditor's settings.

Timed, on 2026-11-16 for the collection date 2026-11-18 (two TARGET2 lead days):
(a) **the due query** alone (``direct_debit_store.due``: unpaid invoices of customers with an
    active mandate, in no open collection, with their open amounts and FRST/RCUR);
(b) **a batch made**: ``direct_debit_service.make_batch`` from the call to its commit: the
    settings locked, the query, the debits, the pain.008.001.02 file (10,000 transactions), the
    batch, its collections and its line of the operations log;
(c) the file checked against the official XSD with xmlschema (what the tests do; not done in
    production, reported to show why);
(d) **settlement** of the whole batch (``settle``: each collection a payment of its invoice
    through admin/payments/record.py, with dunning, in its own transaction);
(e) **a return file** (pain.002 with 1,000 rejected transactions: the payments taken back)
    applied in one transaction.

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
from importlib import resources
from pathlib import Path

import asyncpg
import xmlschema
from benchkit import on_embedded_postgres

from admin.billing import run
from admin.payments import direct_debit_service as service
from admin.payments import direct_debit_store as store
from daemons import db, demo

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "100000"))
MANDATES = int(os.environ.get("BENCH_MANDATES", "10000"))
RETURNS = int(os.environ.get("BENCH_RETURNS", "1000"))
WORK = Path(os.environ.get("BENCH_WORKDIR", "/tmp/lastmile-bench-payments-direct_debit"))
RUN_DAY = dt.date(2026, 11, 1)
TODAY = dt.date(2026, 11, 16)
COLLECTION = dt.date(2026, 11, 18)
IBAN = "DE89370400440532013000"


def say(text: str) -> None:
    print(f"[bench direct_debit] {text}", file=sys.stderr, flush=True)


async def prepare(conn: asyncpg.Connection, pool: asyncpg.Pool) -> None:
    await conn.execute("UPDATE customers SET status = 'active' WHERE status = 'new'")
    await conn.execute("UPDATE services SET status = 'active' WHERE status NOT IN ('active', 'blocked')")
    await conn.execute("UPDATE customer_billing SET billing_day = 1, billing_type = 'recurring', due_days = 14, "
                       "currency = 'EUR'")
    await conn.execute("UPDATE services SET start_date = $1", RUN_DAY)
    await conn.execute("ANALYZE")
    say("billing run for every customer ...")
    t = time.perf_counter()
    await run.run(pool, RUN_DAY, by="bench")
    say(f"billed in {time.perf_counter() - t:.1f} s")
    ids = [r["id"] for r in await conn.fetch("SELECT DISTINCT customer_id AS id FROM documents WHERE kind = 'invoice'")]
    picked = random.Random(6).sample(ids, min(MANDATES, len(ids)))
    await conn.execute(
        "INSERT INTO sepa_mandates (customer_id, reference, iban, bic, holder, signed_on, created_by) "
        "SELECT c.id, 'LM-' || c.number || '-1', $2, 'COBADEFFXXX', c.name, '2026-10-01', 'bench' "
        "FROM customers c WHERE c.id = ANY($1::bigint[])", picked, IBAN)
    await conn.execute("UPDATE sepa_settings SET creditor_id = 'DE98ZZZ09999999999', creditor_name = 'Lastmile Netz', "
                       "iban = 'DE02120300000000202051', bic = 'BYLADEM1001', lead_days = 2")
    await conn.execute("ANALYZE")


def pain002(message_id: str, end_to_end_ids: list[str]) -> bytes:
    txs = "".join(f"<TxInfAndSts><OrgnlEndToEndId>{e}</OrgnlEndToEndId><TxSts>RJCT</TxSts><StsRsnInf><Rsn><Cd>AM04"
                  "</Cd></Rsn></StsRsnInf></TxInfAndSts>" for e in end_to_end_ids)
    return (f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03">'
            f"<CstmrPmtStsRpt><GrpHdr><MsgId>BENCH-STS</MsgId><CreDtTm>2026-11-19T06:00:00</CreDtTm></GrpHdr>"
            f"<OrgnlGrpInfAndSts><OrgnlMsgId>{message_id}</OrgnlMsgId><OrgnlMsgNmId>pain.008.001.02</OrgnlMsgNmId>"
            f"<GrpSts>PART</GrpSts></OrgnlGrpInfAndSts><OrgnlPmtInfAndSts><OrgnlPmtInfId>{message_id}/FRST"
            f"</OrgnlPmtInfId>{txs}</OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>").encode()


async def measure(url: str) -> dict[str, object]:
    results: dict[str, object] = {"customers": CUSTOMERS, "mandates": MANDATES}
    conn = await db.connect(url)
    await db.apply_schema(conn)
    say(f"loading {CUSTOMERS} demo customers ...")
    t = time.perf_counter()
    await demo.load(conn, CUSTOMERS, seed=1)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2, init=db.init_connection)
    await prepare(conn, pool)
    results["set-up seconds"] = round(time.perf_counter() - t, 1)

    t = time.perf_counter()
    due = await store.due(conn, COLLECTION, COLLECTION)
    results["due query"] = {"seconds": round(time.perf_counter() - t, 3), "invoices": len(due)}
    say(f"due query: {results['due query']}")

    t = time.perf_counter()
    made = await service.make_batch(conn, COLLECTION, service.WORKER, None, today=TODAY)
    seconds = time.perf_counter() - t
    xml = await conn.fetchval("SELECT xml FROM dd_batches WHERE id = $1", made.batch_id)
    results["batch made"] = {"seconds": round(seconds, 3), "collections": made.count, "total": str(made.total),
                             "frst": made.first, "rcur": made.recurring, "file bytes": len(xml.encode()),
                             "collections per second": round(made.count / seconds)}
    say(f"batch made: {results['batch made']}")
    assert made.count == len(due) == MANDATES, (made.count, len(due))

    t = time.perf_counter()
    with resources.as_file(resources.files("sepaxml") / "schemas" / "pain.008.001.02.xsd") as path:
        xmlschema.XMLSchema(str(path)).validate(xml)
    results["XSD check (tests only)"] = {"seconds": round(time.perf_counter() - t, 3), "valid": True}
    say(f"XSD check: {results['XSD check (tests only)']}")

    t = time.perf_counter()
    settled = await service.settle(conn, COLLECTION, service.WORKER, None)
    seconds = time.perf_counter() - t
    results["settlement"] = {"seconds": round(seconds, 3), "collections": settled.count,
                             "ms each": round(seconds / max(1, settled.count) * 1000, 2)}
    say(f"settlement: {results['settlement']}")
    assert settled.count == made.count

    ids = [r["end_to_end_id"] for r in await conn.fetch(
        "SELECT end_to_end_id FROM dd_collections ORDER BY random() LIMIT $1", RETURNS)]
    report_file = pain002(made.message_id, ids)
    t = time.perf_counter()
    applied = await service.apply_report(conn, report_file, "bench.xml", service.WORKER, None, today=COLLECTION)
    seconds = time.perf_counter() - t
    results["return file"] = {"seconds": round(seconds, 3), "taken back": applied.count("reversed"),
                              "file bytes": len(report_file)}
    say(f"return file: {results['return file']}")
    assert applied.count("reversed") == len(ids)
    counts = await conn.fetchrow("SELECT (SELECT count(*) FROM documents) AS documents, "
                                 "(SELECT count(*) FROM payments) AS payments, "
                                 "(SELECT count(*) FROM payment_reversals) AS reversals, "
                                 "(SELECT count(*) FROM dd_collections) AS collections")
    assert counts is not None
    results["rows"] = dict(counts)
    await pool.close()
    await conn.close()
    return results


def report(results: dict[str, object]) -> None:
    print(f"\ndirect-debit benchmark: {CUSTOMERS:,} customers, {MANDATES:,} with a mandate\n")
    print(f"{'step':34} {'seconds':>9}")
    for what in ("due query", "batch made", "XSD check (tests only)", "settlement", "return file"):
        r = results[what]
        assert isinstance(r, dict)
        print(f"{what:34} {r['seconds']:9.3f}")
    print(json.dumps(results, indent=1, default=str))
    (WORK / "results.json").write_text(json.dumps(results, indent=1, default=str))


def main() -> int:
    report(on_embedded_postgres(WORK, 55496, measure, say))
    return 0


if __name__ == "__main__":
    sys.exit(main())
